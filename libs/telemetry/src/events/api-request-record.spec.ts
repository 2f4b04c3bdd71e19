import { apiRequestRecord, recordBytes, renderApiRequest, uuidSeed, type ApiRequestRecord } from './api-request-record.js';
import { apiRequestEvent, isoTimestamp, type ApiRequestFields, type EventIdentity } from './telemetry-events.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const base: EventIdentity = { distinctId: 'user-1', requestId: 'req-1', userId: 'user-1', environment: 'test', personless: false };
const fields: ApiRequestFields = { endpoint: '/items/:id', method: 'GET', statusCode: 200, durationMs: 12.3456 };

/** The text of `JSON.stringify(apiRequestEvent(...))` for the same uuid and timestamp. */
function expected(identity: EventIdentity, f: ApiRequestFields, json: string): string {
  const { uuid, timestamp } = JSON.parse(json) as { uuid: string; timestamp: string };
  return JSON.stringify({ ...apiRequestEvent(identity, f), timestamp, uuid });
}

const seed = uuidSeed();
const clock = () => ({ second: Number.NaN, text: '' });
let sequence = 0;

/** The record's JSON, as the sender writes it: with its number among the sender's events. */
function apiRequestJson(identity: EventIdentity, f: ApiRequestFields, at = sequence++): string {
  const record = apiRequestRecord(identity, f);
  record[16] = at;
  return renderApiRequest(record, seed, { second: Number.NaN, text: '' });
}

describe('api_request records', () => {
  it.each<[string, EventIdentity, ApiRequestFields]>([
    ['a user', base, fields],
    [
      'an anonymous request, with session, trace and parent span',
      {
        ...base,
        userId: 'anonymous',
        distinctId: 'f1e2',
        personless: true,
        sessionId: 's-1',
        traceId: 'a'.repeat(32),
        spanId: 'b'.repeat(16),
        parentSpanId: 'c'.repeat(16),
      },
      fields,
    ],
    ['an internal user', { ...base, internalUser: true }, { ...fields, statusCode: 500, success: false }],
    ['no request id', { ...base, requestId: undefined }, { ...fields, statusCode: 404, endpoint: '(unmatched)' }],
    [
      'text to escape',
      { ...base, distinctId: 'a "quoted" \\ id', userId: 'ü-ser\n', environment: 'prod "eu"', sessionId: '\u2028' },
      { ...fields, endpoint: '/files/"name"', method: 'PÖST' },
    ],
    ['a duration that is not a number', base, { ...fields, durationMs: Number.NaN }],
    ['a success the status does not say', base, { ...fields, statusCode: 200, success: false }],
  ])('writes the same JSON as the event object (%s)', (_name, identity, f) => {
    const json = apiRequestJson(identity, f);
    expect(json).toBe(expected(identity, f, json));
  });

  it('gives the same uuid on each writing of a record (each try of its batch), another to each record and each sender', () => {
    const record = apiRequestRecord(base, fields);
    record[16] = 7;
    const uuidOf = (r: ApiRequestRecord, s = seed) => (JSON.parse(renderApiRequest(r, s, clock())) as { uuid: string }).uuid;
    expect(uuidOf(record)).toBe(uuidOf(record));
    const uuids = new Set<string>();
    // Across the 24 bits of the low half and into the high one.
    for (const at of [0, 1, 2, 0xffffff, 0x1000000, 0x1000001, 2 ** 40 + 3]) {
      const r = apiRequestRecord(base, fields);
      r[16] = at;
      expect(uuidOf(r)).toMatch(UUID_V4);
      uuids.add(uuidOf(r));
    }
    expect(uuids.size).toBe(7);
    expect(uuidOf(record, uuidSeed())).not.toBe(uuidOf(record));
  });

  it('writes each timestamp right with one clock kept across records (a batch), across seconds and back', () => {
    const kept = clock();
    for (const ms of [1_000_999, 1_001_000, 1_000_500, 0, 1_796_025_517_009, 1_796_025_517_090, 1_796_025_517_753]) {
      const record = apiRequestRecord(base, fields);
      record[15] = ms;
      expect((JSON.parse(renderApiRequest(record, seed, kept)) as { timestamp: string }).timestamp).toBe(new Date(ms).toISOString());
    }
  });

  it('weighs a record as about its JSON', () => {
    for (const identity of [base, { ...base, distinctId: 'x'.repeat(5000), sessionId: 's'.repeat(300) }]) {
      const record = apiRequestRecord(identity, fields);
      const bytes = Buffer.byteLength(renderApiRequest(record, seed, clock()));
      expect(recordBytes(record)).toBeGreaterThanOrEqual(bytes);
      expect(recordBytes(record)).toBeLessThan(bytes + 400);
    }
  });

  it('gives each event its own uuid and the time it was recorded', () => {
    const before = Date.now();
    const [a, b] = [apiRequestJson(base, fields), apiRequestJson(base, fields)].map(
      (json) => JSON.parse(json) as { uuid: string; timestamp: string },
    );
    expect(a.uuid).toMatch(UUID_V4);
    expect(a.uuid).not.toBe(b.uuid);
    expect(Date.parse(a.timestamp)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(a.timestamp)).toBeLessThanOrEqual(Date.now());
  });
});

describe('isoTimestamp', () => {
  it.each([0, 1, 999, 1000, 1_796_025_517_753, 1_796_025_517_009, 1_796_025_517_090, 253_402_300_799_999])('is toISOString of %d', (ms) => {
    expect(isoTimestamp(ms)).toBe(new Date(ms).toISOString());
  });

  it('follows the clock across seconds', () => {
    expect(isoTimestamp(1_000_999)).toBe(new Date(1_000_999).toISOString());
    expect(isoTimestamp(1_001_000)).toBe(new Date(1_001_000).toISOString());
    expect(isoTimestamp(1_000_500)).toBe(new Date(1_000_500).toISOString());
  });
});

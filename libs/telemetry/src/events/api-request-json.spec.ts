import { apiRequestJson } from './api-request-json.js';
import { apiRequestEvent, isoTimestamp, type ApiRequestFields, type EventIdentity } from './telemetry-events.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const base: EventIdentity = { distinctId: 'user-1', requestId: 'req-1', userId: 'user-1', environment: 'test', personless: false };
const fields: ApiRequestFields = { endpoint: '/items/:id', method: 'GET', statusCode: 200, durationMs: 12.3456 };

/** The text of `JSON.stringify(apiRequestEvent(...))` for the same uuid and timestamp. */
function expected(identity: EventIdentity, f: ApiRequestFields, json: string): string {
  const { uuid, timestamp } = JSON.parse(json) as { uuid: string; timestamp: string };
  return JSON.stringify({ ...apiRequestEvent(identity, f), timestamp, uuid });
}

describe('apiRequestJson', () => {
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

  it('writes the right route and environment past the bound of the pieces it keeps (1000)', () => {
    for (let i = 0; i < 2500; i++) {
      const identity = { ...base, environment: `env-${i % 1200}` };
      const f = { ...fields, endpoint: `/route-${i % 1300}`, method: i % 2 === 0 ? 'GET' : 'POST' };
      const json = apiRequestJson(identity, f);
      expect(json).toBe(expected(identity, f, json));
    }
  });

  it('gives each event its own uuid and the time it was written', () => {
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

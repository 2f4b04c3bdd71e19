import { apiRequestJson, sendApiRequestJson } from './api-request-json.js';
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
    ['a session to escape, then trace and span', { ...base, sessionId: 'a "b"', traceId: 'a'.repeat(32), spanId: 'b'.repeat(16) }, fields],
    ['a plain session then a trace, no request id', { ...base, requestId: undefined, sessionId: 's-1', traceId: 'a'.repeat(32) }, fields],
    ['only a parent span after the request id', { ...base, parentSpanId: 'c'.repeat(16), personless: true }, fields],
    ['an environment not in ASCII and no request id', { ...base, requestId: undefined, environment: 'prod-日本' }, fields],
    ['nothing after the user but the environment', { ...base, requestId: undefined, internalUser: true }, fields],
    ['statuses outside 0 to 599', base, { ...fields, statusCode: 600 }],
    ['a status of 0', base, { ...fields, statusCode: 0 }],
    ['a status of -1', base, { ...fields, statusCode: -1 }],
    ['a status of -0', base, { ...fields, statusCode: -0 }],
    ['a status that is a fraction', base, { ...fields, statusCode: 200.5 }],
    ['a status that is not a number', base, { ...fields, statusCode: Number.NaN }],
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

  it.each([0, 0.004, 0.005, 0.1, 1, 1.1, 1.05, 2.675, 10.999, 99.995, 1234.5678, 86_400_000.01, 3e7, 2 ** 31, 1e21, -1, -0.004, Infinity])(
    'writes a duration of %d ms as the event object does',
    (durationMs) => {
      const json = apiRequestJson(base, { ...fields, durationMs });
      expect(json).toBe(expected(base, { ...fields, durationMs }, json));
    },
  );

  it('writes every duration in hundredths as the event object does', () => {
    for (let i = 0; i < 20_000; i++) {
      const durationMs = Math.random() * (i % 2 === 0 ? 10 : 100_000);
      const json = apiRequestJson(base, { ...fields, durationMs });
      expect(json).toBe(expected(base, { ...fields, durationMs }, json));
    }
  });

  it.each<[string, EventIdentity, ApiRequestFields]>([
    ['ASCII', base, fields],
    ['an id to escape', { ...base, distinctId: 'a "quoted" id' }, fields],
    ['a user id and session in other scripts', { ...base, userId: 'ユーザー', sessionId: 'séance 😀' }, fields],
    ['a route and method not in ASCII', base, { ...fields, endpoint: '/café/:id', method: 'ÜBER' }],
    ['an environment not in ASCII', { ...base, environment: 'prod-日本' }, fields],
    ['an environment not in ASCII, no request id', { ...base, environment: 'prod-日本', requestId: undefined }, fields],
    ['a distinct id to escape beyond ASCII, user and session plain', { ...base, distinctId: 'ü "x"', sessionId: 's-1' }, fields],
  ])('hands the sink its JSON with its exact size in UTF-8 bytes, also once its pieces are kept (%s)', (_name, identity, f) => {
    const queued: [string, number][] = [];
    const sink = { enqueueJson: (json: string, bytes: number) => void queued.push([json, bytes]) };
    // The first call keeps the route's and environment's pieces, the second one uses them.
    sendApiRequestJson(sink, identity, f);
    sendApiRequestJson(sink, identity, f);
    for (const [json, bytes] of queued) {
      expect(json).toBe(expected(identity, f, json));
      expect(bytes).toBe(Buffer.byteLength(json));
    }
  });

  it('counts the UTF-8 bytes of kept pieces right past the bound of the pieces it keeps', () => {
    const sink = { enqueueJson: (json: string, bytes: number) => expect(bytes).toBe(Buffer.byteLength(json)) };
    for (let i = 0; i < 2500; i++) {
      const identity = { ...base, environment: i % 3 === 0 ? `é-${i % 1200}` : `env-${i % 1200}` };
      sendApiRequestJson(sink, identity, { ...fields, endpoint: i % 2 === 0 ? `/ü-${i % 1300}` : `/route-${i % 1300}` });
    }
    expect.assertions(2500);
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

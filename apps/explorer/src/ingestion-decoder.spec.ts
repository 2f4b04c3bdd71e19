import { gzipSync } from 'node:zlib';
import { decodeIngestion, IngestionError, MAX_EVENT_BYTES, type RawIngestion } from './ingestion-decoder.js';

const MAX = 64 * 1024;
const NOW = Date.parse('2026-11-23T12:00:00.000Z');
const raw = (body: Buffer | string, extra: Partial<RawIngestion> = {}): RawIngestion => ({
  body: Buffer.isBuffer(body) ? body : Buffer.from(body),
  query: {},
  maxBytes: MAX,
  receivedAt: NOW,
  ...extra,
});

/** An event as posthog-js sends it: the distinct id inside the properties. */
const browserEvent = {
  uuid: '01a20a09-9093-70e0-bbd7-b36a0929b275',
  event: 'button_click',
  timestamp: '2026-11-23T11:59:59.500Z',
  properties: { distinct_id: 'anon-1', $session_id: 'session-1', $lib: 'web', request_id: 'req-1', token: 'phc_x' },
};
/** An event as posthog-node sends it in `/batch/`. */
const serverEvent = {
  uuid: '11111111-2222-4333-8444-555555555555',
  event: 'api_request',
  distinct_id: 'user-1',
  timestamp: '2026-11-23T11:59:59.900Z',
  properties: { request_id: 'req-1', status_code: 200 },
};
const base64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64');

describe('decodeIngestion', () => {
  it('reads posthog-node batches: { api_key, batch }', () => {
    const { events, rejected } = decodeIngestion(raw(JSON.stringify({ api_key: 'phc_x', batch: [serverEvent] })));
    expect(rejected).toBe(0);
    expect(events).toEqual([
      {
        uuid: serverEvent.uuid,
        event: 'api_request',
        distinct_id: 'user-1',
        timestampMs: Date.parse(serverEvent.timestamp),
        properties: serverEvent.properties,
      },
    ]);
  });

  it.each<[string, () => RawIngestion]>([
    ['a plain JSON array', () => raw(JSON.stringify([browserEvent]))],
    ['a single event object', () => raw(JSON.stringify(browserEvent))],
    [
      'gzip-js (posthog-js: gzip body, compression in the query)',
      () => raw(gzipSync(JSON.stringify([browserEvent])), { query: { compression: 'gzip-js' } }),
    ],
    ['gzip recognised by its magic bytes', () => raw(gzipSync(JSON.stringify([browserEvent])))],
    [
      'base64 (compression=base64 in the query, form body)',
      () =>
        raw(`data=${encodeURIComponent(base64([browserEvent]))}`, {
          query: { compression: 'base64' },
          contentType: 'application/x-www-form-urlencoded',
        }),
    ],
    ['base64 named inside the form', () => raw(`data=${encodeURIComponent(base64([browserEvent]))}&compression=base64`)],
    [
      'a form with plain JSON in data',
      () => raw(`data=${encodeURIComponent(JSON.stringify([browserEvent]))}`, { contentType: 'application/x-www-form-urlencoded' }),
    ],
    ['bare base64 text', () => raw(base64([browserEvent]))],
    ['the GET fallback ?data=', () => raw('', { query: { data: base64([browserEvent]) } })],
    [
      'JSON under a form content type (curl default)',
      () => raw(JSON.stringify([browserEvent]), { contentType: 'application/x-www-form-urlencoded' }),
    ],
  ])('reads posthog-js events sent as %s, with the distinct id from the properties', (_label, make) => {
    const { events } = decodeIngestion(make());
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      uuid: browserEvent.uuid,
      event: 'button_click',
      distinct_id: 'anon-1',
      timestampMs: Date.parse(browserEvent.timestamp),
    });
    expect(events[0].properties).toMatchObject({ $session_id: 'session-1', request_id: 'req-1', $lib: 'web' });
  });

  it('counts items that are not events as rejected and keeps the rest', () => {
    const body = [
      serverEvent,
      null,
      'text',
      { event: 'no_distinct_id', properties: {} },
      { distinct_id: 'x' },
      { event: 'x'.repeat(201), distinct_id: 'a' },
    ];
    const { events, rejected } = decodeIngestion(raw(JSON.stringify(body)));
    expect(events.map((e) => e.event)).toEqual(['api_request']);
    expect(rejected).toBe(5);
  });

  it('drops an event over 1 MiB, as PostHog does, and keeps its neighbours', () => {
    const big = { event: 'big', distinct_id: 'd', properties: { blob: 'x'.repeat(MAX_EVENT_BYTES) } };
    const { events, rejected } = decodeIngestion(raw(JSON.stringify([serverEvent, big]), { maxBytes: 4 * MAX_EVENT_BYTES }));
    expect(events.map((e) => e.event)).toEqual(['api_request']);
    expect(rejected).toBe(1);
  });

  it('gives an event without uuid one derived from its content, so a retry is stored once', () => {
    const withoutUuid: Partial<typeof serverEvent> = { ...serverEvent };
    delete withoutUuid.uuid;
    const first = decodeIngestion(raw(JSON.stringify([withoutUuid]))).events[0].uuid;
    const again = decodeIngestion(raw(JSON.stringify([withoutUuid]), { receivedAt: NOW + 5000 })).events[0].uuid;
    const other = decodeIngestion(raw(JSON.stringify([{ ...withoutUuid, event: 'other' }]))).events[0].uuid;
    expect(first).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(again).toBe(first);
    expect(other).not.toBe(first);
  });

  it('takes the time from timestamp, else $time (seconds), else the arrival time', () => {
    const decode = (event: object) =>
      decodeIngestion(raw(JSON.stringify([{ event: 'e', distinct_id: 'd', ...event }]))).events[0].timestampMs;
    expect(decode({ timestamp: '2026-01-02T03:04:05.678Z' })).toBe(Date.parse('2026-01-02T03:04:05.678Z'));
    expect(decode({ properties: { $time: 1_700_000_000.25 } })).toBe(1_700_000_000_250);
    expect(decode({ timestamp: 'not a time' })).toBe(NOW);
    expect(decode({})).toBe(NOW);
  });

  it('keeps $set beside the properties, as posthog-js sends it with $identify', () => {
    const [event] = decodeIngestion(raw(JSON.stringify([{ ...browserEvent, event: '$identify', $set: { plan: 'pro' } }]))).events;
    expect(event.properties.$set).toEqual({ plan: 'pro' });
  });

  it.each<[string, () => RawIngestion, boolean]>([
    ['a body over the limit', () => raw('['.padEnd(MAX + 1, ' ')), true],
    [
      'gzip that inflates past the limit (a gzip bomb)',
      () => raw(gzipSync('[' + ' '.repeat(MAX * 20) + ']'), { query: { compression: 'gzip-js' } }),
      true,
    ],
    ['gzip-js that is not gzip', () => raw('plain text', { query: { compression: 'gzip-js' } }), false],
    ['text that is not JSON', () => raw('{not json'), false],
    ['lz64, which the explorer does not decode', () => raw('data=abc', { query: { compression: 'lz64' } }), false],
    ['JSON that holds no events', () => raw(JSON.stringify({ hello: 'world' })), false],
  ])('refuses %s with a clear error', (_label, make, tooLarge) => {
    let caught: unknown;
    try {
      decodeIngestion(make());
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(IngestionError);
    expect((caught as IngestionError).message.length).toBeGreaterThan(10);
    expect((caught as IngestionError).tooLarge).toBe(tooLarge);
  });
});

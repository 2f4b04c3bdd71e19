import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventStore } from './event-store.js';
import { ExplorerQueries } from './explorer-queries.js';
import type { IngestedEvent } from './ingestion-decoder.js';

/** A small seeded generator, so the data set is the same on every run. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The percentile by linear interpolation between closest ranks, computed here without the database. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = p * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

const T0 = Date.parse('2026-11-23T10:00:00.000Z');
let counter = 0;
function ev(event: string, distinctId: string, ts: number, properties: Record<string, unknown>): IngestedEvent {
  counter += 1;
  return {
    uuid: `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`,
    event,
    distinct_id: distinctId,
    timestampMs: ts,
    properties,
  };
}

const ENDPOINTS = [
  { method: 'GET', endpoint: '/items/:id', errorStatus: 404, errorType: 'client_error' },
  { method: 'POST', endpoint: '/chat', errorStatus: 503, errorType: 'connection_error' },
  { method: 'GET', endpoint: '/errors/quota', errorStatus: 429, errorType: 'quota_error' },
  { method: 'GET', endpoint: '/report', errorStatus: 500, errorType: 'application_error' },
];
const SLOW_MS = 1000;

interface Request {
  method: string;
  endpoint: string;
  status: number;
  latency: number;
  user: string;
  requestId: string;
  ts: number;
  errorType?: string;
}

/** 400 requests over 20 minutes by 5 users, with their slow_request and api_error events, in shuffled arrival order. */
function dataSet() {
  const next = random(42);
  const requests: Request[] = [];
  const events: IngestedEvent[] = [];
  for (let i = 0; i < 400; i += 1) {
    const target = ENDPOINTS[Math.floor(next() * ENDPOINTS.length)];
    const failed = next() < 0.15;
    const latency = Math.round((5 + next() ** 3 * 2000) * 100) / 100;
    const request: Request = {
      method: target.method,
      endpoint: target.endpoint,
      status: failed ? target.errorStatus : 200,
      latency,
      user: `user_${i % 5}`,
      requestId: `req-${i}`,
      ts: T0 + Math.floor(next() * 20 * 60_000),
      errorType: failed ? target.errorType : undefined,
    };
    requests.push(request);
    const common = { request_id: request.requestId, endpoint: request.endpoint, method: request.method, $session_id: `session_${i % 7}` };
    events.push(ev('api_request', request.user, request.ts, { ...common, status_code: request.status, response_time_ms: latency }));
    if (latency > SLOW_MS)
      events.push(ev('slow_request', request.user, request.ts, { ...common, duration_ms: latency, threshold_ms: SLOW_MS }));
    if (failed)
      events.push(
        ev('api_error', request.user, request.ts, {
          ...common,
          status_code: request.status,
          error_type: request.errorType,
          error_message: `failed ${i}`,
          traceback: `Error: failed ${i}\n    at handler`,
        }),
      );
  }
  events.sort(() => next() - 0.5);
  return { requests, events };
}

describe('ExplorerQueries', () => {
  let store: EventStore;
  let queries: ExplorerQueries;
  const { requests, events } = dataSet();

  beforeAll(async () => {
    store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 1_000_000 });
    queries = new ExplorerQueries(store);
    expect(await store.insert(events)).toEqual({ stored: events.length, duplicates: 0 });
  });
  afterAll(() => store.close());

  describe('performance', () => {
    it('gives per endpoint p50/p95/p99 equal to percentiles computed independently', async () => {
      const { endpoints } = await queries.performance({});
      expect(endpoints).toHaveLength(ENDPOINTS.length);
      for (const row of endpoints) {
        const latencies = requests.filter((r) => r.endpoint === row.endpoint && r.method === row.method).map((r) => r.latency);
        expect(row.requests).toBe(latencies.length);
        for (const [key, p] of [
          ['p50_ms', 0.5],
          ['p95_ms', 0.95],
          ['p99_ms', 0.99],
        ] as const) {
          expect(Math.abs(row[key]! - percentile(latencies, p))).toBeLessThan(0.006);
        }
        expect(row.max_ms).toBe(Math.max(...latencies));
      }
    });

    it('gives error rate (5xx), client error rate (4xx) and slow_request counts per endpoint', async () => {
      const { endpoints } = await queries.performance({});
      for (const row of endpoints) {
        const mine = requests.filter((r) => r.endpoint === row.endpoint);
        expect(row.error_rate).toBeCloseTo(mine.filter((r) => r.status >= 500).length / mine.length, 4);
        expect(row.client_error_rate).toBeCloseTo(mine.filter((r) => r.status >= 400 && r.status < 500).length / mine.length, 4);
        expect(row.slow_requests).toBe(mine.filter((r) => r.latency > SLOW_MS).length);
      }
      expect(endpoints.reduce((sum, r) => sum + r.slow_requests, 0)).toBeGreaterThan(0);
    });

    it('counts only the slow requests among those the filters select', async () => {
      for (const filter of [{ status: '200' }, { status: '5xx' }, { user: 'user_2' }, { errorType: 'connection_error' }]) {
        const { endpoints } = await queries.performance(filter);
        const selected = requests.filter(
          (r) =>
            (filter.status === undefined || (filter.status === '5xx' ? r.status >= 500 : String(r.status) === filter.status)) &&
            (filter.user === undefined || r.user === filter.user) &&
            (filter.errorType === undefined || r.errorType === filter.errorType),
        );
        expect(endpoints.reduce((sum, r) => sum + r.requests, 0)).toBe(selected.length);
        for (const row of endpoints) {
          expect(row.slow_requests).toBe(selected.filter((r) => r.endpoint === row.endpoint && r.latency > SLOW_MS).length);
        }
      }
    });

    it('draws latency over time in buckets that hold every request once', async () => {
      const { over_time, bucket_ms } = await queries.performance({});
      expect(bucket_ms).toBe(10_000);
      expect(over_time.reduce((sum, b) => sum + b.requests, 0)).toBe(requests.length);
      // Consecutive buckets, empty ones included, so a chart shows gaps in time.
      const starts = over_time.map((b) => Date.parse(b.bucket));
      expect(starts.slice(1).every((t, i) => t - starts[i] === bucket_ms)).toBe(true);
      expect(over_time.some((b) => b.requests === 0 && b.p50_ms === null)).toBe(true);
      const first = over_time[0];
      const inFirst = requests.filter((r) => Math.floor(r.ts / bucket_ms) * bucket_ms === Date.parse(first.bucket)).map((r) => r.latency);
      expect(first.requests).toBe(inFirst.length);
      expect(Math.abs(first.p95_ms! - percentile(inFirst, 0.95))).toBeLessThan(0.006);
    });

    it('filters by user and by time', async () => {
      const from = T0 + 5 * 60_000;
      const to = T0 + 10 * 60_000;
      const { endpoints } = await queries.performance({ user: 'user_3', from, to });
      const mine = requests.filter((r) => r.user === 'user_3' && r.ts >= from && r.ts <= to);
      expect(endpoints.reduce((sum, r) => sum + r.requests, 0)).toBe(mine.length);
      const chat = mine.filter((r) => r.endpoint === '/chat').map((r) => r.latency);
      expect(Math.abs(endpoints.find((r) => r.endpoint === '/chat')!.p50_ms! - percentile(chat, 0.5))).toBeLessThan(0.006);
    });
  });

  describe('errors', () => {
    it('groups api_error by error_type and by endpoint, with counts that match the data', async () => {
      const failed = requests.filter((r) => r.errorType);
      const result = await queries.errors({});
      expect(result.total).toBe(failed.length);
      for (const row of result.by_type) expect(row.count).toBe(failed.filter((r) => r.errorType === row.error_type).length);
      expect(result.by_type.map((r) => r.error_type).sort()).toEqual([...new Set(failed.map((r) => r.errorType))].sort());
      for (const row of result.by_endpoint) expect(row.count).toBe(failed.filter((r) => r.endpoint === row.endpoint).length);
      expect(result.over_time.reduce((sum, r) => sum + r.count, 0)).toBe(failed.length);
      const starts = result.buckets.map((b) => Date.parse(b));
      expect(starts.slice(1).every((t, i) => t - starts[i] === result.bucket_ms)).toBe(true);
      expect(new Set(result.over_time.map((r) => r.bucket)).size).toBeLessThan(result.buckets.length);
    });

    it('shows the newest error with its traceback, and the recent ones newest first', async () => {
      const failed = requests.filter((r) => r.errorType).sort((a, b) => b.ts - a.ts);
      const result = await queries.errors({});
      expect(result.latest?.timestamp).toBe(new Date(failed[0].ts).toISOString());
      expect(result.latest?.traceback).toMatch(/^Error: failed \d+\n {4}at handler$/);
      expect(result.recent.map((r) => Date.parse(r.timestamp))).toEqual(
        [...result.recent.map((r) => Date.parse(r.timestamp))].sort((a, b) => b - a),
      );
    });

    it('filters by error type and status class', async () => {
      const quota = await queries.errors({ errorType: 'quota_error' });
      expect(quota.by_type.map((r) => r.error_type)).toEqual(['quota_error']);
      const serverSide = await queries.errors({ status: '5xx' });
      expect(serverSide.total).toBe(requests.filter((r) => r.errorType && r.status >= 500).length);
    });
  });

  describe('requests', () => {
    it('lists api_request newest first with the slow flag and the error type of each', async () => {
      const { total, requests: rows } = await queries.requests({}, 50);
      expect(total).toBe(requests.length);
      expect(rows).toHaveLength(50);
      const times = rows.map((r) => Date.parse(r.timestamp));
      expect(times).toEqual([...times].sort((a, b) => b - a));
      for (const row of rows) {
        const source = requests.find((r) => r.requestId === row.request_id)!;
        expect(row).toMatchObject({
          status_code: source.status,
          response_time_ms: source.latency,
          slow: source.latency > SLOW_MS,
          error_type: source.errorType ?? null,
        });
      }
    });

    it("filters by error type through the request's api_error", async () => {
      const { total, requests: rows } = await queries.requests({ errorType: 'quota_error' }, 1000);
      const expected = requests.filter((r) => r.errorType === 'quota_error');
      expect(total).toBe(expected.length);
      expect(rows.every((r) => r.error_type === 'quota_error')).toBe(true);
    });

    it('filters by user, endpoint and status', async () => {
      const { total, requests: rows } = await queries.requests({ user: 'user_1', endpoint: '/chat', status: '503' }, 1000);
      const expected = requests.filter((r) => r.user === 'user_1' && r.endpoint === '/chat' && r.status === 503);
      expect(total).toBe(expected.length);
      expect(rows.map((r) => r.request_id).sort()).toEqual(expected.map((r) => r.requestId).sort());
    });
  });
});

describe('ExplorerQueries.journey', () => {
  let store: EventStore;
  let queries: ExplorerQueries;
  const at = (ms: number) => T0 + ms;

  beforeAll(async () => {
    store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 1000 });
    queries = new ExplorerQueries(store);
    const web = (props: Record<string, unknown>) => ({ $lib: 'web', $session_id: 's1', ...props });
    // Stored out of order, in three batches, as two clients would deliver them.
    await store.insert([
      ev('api_request', 'anon', at(120), {
        request_id: 'r1',
        $session_id: 's1',
        endpoint: '/chat',
        status_code: 200,
        response_time_ms: 100,
      }),
      ev('chat_message_sent', 'anon', at(60), { request_id: 'r1', $session_id: 's1' }),
    ]);
    await store.insert([
      ev('button_click', 'anon', at(0), web({ request_id: 'r1', button_name: 'Send' })),
      ev('chat_message_sent', 'anon', at(130), web({ request_id: 'r1' })),
      ev('$pageview', 'anon', at(-1000), web({})),
      ev('button_click', 'anon', at(5000), web({ request_id: 'r2' })),
    ]);
    await store.insert([
      ev('api_request', 'anon', at(5400), { request_id: 'r2', $session_id: 's1', status_code: 500 }),
      ev('api_error', 'anon', at(5400), { request_id: 'r2', $session_id: 's1', error_type: 'application_error' }),
      ev('api_request', 'anon', at(9000), { request_id: 'r3', $session_id: 's2' }),
    ]);
  });
  afterAll(() => store.close());

  const names = (events: { event: string; source: string }[]) => events.map((e) => `${e.source}:${e.event}`);

  it('by request id: frontend and backend events of that request, in time order', async () => {
    const { events, truncated } = await queries.journey({ request_id: 'r1' });
    expect(truncated).toBe(false);
    expect(names(events)).toEqual([
      'frontend:button_click',
      'backend:chat_message_sent',
      'backend:api_request',
      'frontend:chat_message_sent',
    ]);
    expect(events[0]).toMatchObject({ distinct_id: 'anon', timestamp: new Date(at(0)).toISOString() });
    expect(events[0].properties).toMatchObject({ button_name: 'Send', request_id: 'r1' });
  });

  it('by session: every request of the session, events of one millisecond in arrival order', async () => {
    const { events } = await queries.journey({ session_id: 's1' });
    expect(names(events)).toEqual([
      'frontend:$pageview',
      'frontend:button_click',
      'backend:chat_message_sent',
      'backend:api_request',
      'frontend:chat_message_sent',
      'frontend:button_click',
      'backend:api_request',
      'backend:api_error',
    ]);
  });

  it('by user: all sessions; past the limit the latest events, still in order', async () => {
    expect((await queries.journey({ distinct_id: 'anon' })).events).toHaveLength(9);
    const { events, truncated } = await queries.journey({ distinct_id: 'anon' }, 3);
    expect(truncated).toBe(true);
    expect(names(events)).toEqual(['backend:api_request', 'backend:api_error', 'backend:api_request']);
  });

  it("by user: includes the anonymous browser's events that $identify linked to the user", async () => {
    const linked = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 1000 });
    const web = { $lib: 'web', $session_id: 's9' };
    await linked.insert([
      ev('signup_started', 'browser-1', at(0), { ...web }),
      ev('api_request', 'browser-1', at(10), { request_id: 'signup', endpoint: '/auth/signup' }),
      ev('$identify', 'user_9', at(20), { ...web, $anon_distinct_id: 'browser-1' }),
      ev('chat_started', 'user_9', at(30), { ...web }),
      ev('unrelated', 'browser-2', at(40), {}),
      // Someone else's $identify naming this user's id as its anonymous id links nothing backwards.
      ev('$identify', 'user_10', at(50), { $anon_distinct_id: 'user_9' }),
    ]);
    const events = (await new ExplorerQueries(linked).journey({ distinct_id: 'user_9' })).events;
    expect(events.map((e) => `${e.distinct_id}:${e.event}`)).toEqual([
      'browser-1:signup_started',
      'browser-1:api_request',
      'user_9:$identify',
      'user_9:chat_started',
    ]);
    await linked.close();
  });

  it('leaves out properties over 64 KiB, saying how large they were', async () => {
    await store.insert([ev('huge', 'anon', at(20_000), { request_id: 'r-huge', $session_id: 's3', blob: 'x'.repeat(70_000) })]);
    const [event] = (await queries.journey({ request_id: 'r-huge' })).events;
    expect(event.properties).toEqual({
      request_id: 'r-huge',
      $session_id: 's3',
      $explorer_note: expect.stringMatching(/^properties of 7\d{4} bytes not shown$/),
    });
  });

  it('answers an unknown id with no events', async () => {
    expect(await queries.journey({ request_id: 'nope' })).toEqual({ events: [], truncated: false });
  });
});

describe('EventStore', () => {
  const old = (days: number) => Date.now() - days * 86_400_000;

  it('stores each uuid once, within a batch and across retries', async () => {
    const store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 100 });
    const a = ev('e', 'd', Date.now(), {});
    const b = ev('e', 'd', Date.now(), {});
    expect(await store.insert([a, a, b])).toEqual({ stored: 2, duplicates: 1 });
    expect(await store.insert([a, b])).toEqual({ stored: 0, duplicates: 2 });
    expect((await store.query('SELECT count(*) AS n FROM events'))[0].n).toBe(2);
    await store.close();
  });

  it('keeps the arrival order of events of the same millisecond, batch after batch', async () => {
    const store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 100_000 });
    for (let round = 0; round < 10; round += 1) {
      const batch = Array.from({ length: 300 }, (_, i) => ({ ...ev(`e${i}`, `same-ms-${round}`, T0, {}) }));
      await store.insert([...batch, batch[5]]);
      const journey = await new ExplorerQueries(store).journey({ distinct_id: `same-ms-${round}` });
      expect(journey.events.map((e) => e.event)).toEqual(batch.map((e) => e.event));
    }
    await store.close();
  });

  it('deletes events older than the retention period, then the oldest past maxEvents', async () => {
    const store = await EventStore.open(':memory:', { retentionDays: 7, maxEvents: 5 });
    await store.insert([ev('arrived_8_days_ago', 'd', Date.now(), {})], old(8));
    // By arrival, not by the client's clock: a far-future timestamp does not keep an event forever.
    await store.insert([ev('future_clock', 'd', Date.now() + 365 * 86_400_000, {})], old(2));
    await store.insert(
      Array.from({ length: 6 }, (_, i) => ev(`recent_${i}`, 'd', old(30) + i, {})),
      old(1),
    );
    expect(await store.prune()).toBe(3);
    const left = await store.query<{ event: string }>('SELECT event FROM events ORDER BY seq');
    expect(left.map((r) => r.event)).toEqual(['recent_1', 'recent_2', 'recent_3', 'recent_4', 'recent_5']);
    await store.close();
  });

  it('keeps events in its file across restarts, still deduplicated', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'explorer-'));
    try {
      const path = join(dir, 'nested', 'events.duckdb');
      const event = ev('kept', 'd', Date.now(), { request_id: 'persisted' });
      let store = await EventStore.open(path, { retentionDays: 7, maxEvents: 100 });
      await store.insert([event]);
      await store.close();
      store = await EventStore.open(path, { retentionDays: 7, maxEvents: 100 });
      expect(await store.insert([event])).toEqual({ stored: 0, duplicates: 1 });
      expect(await new ExplorerQueries(store).journey({ request_id: 'persisted' })).toMatchObject({ events: [{ event: 'kept' }] });
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on close, lets queued work finish, refuses what comes after, and does not hang', async () => {
    const store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 100_000 });
    const running = store.insert(Array.from({ length: 5000 }, (_, i) => ev(`e${i}`, 'd', Date.now(), { blob: 'x'.repeat(100) })));
    const closing = store.close();
    const late = expect(store.query('SELECT 1')).rejects.toThrow('closed');
    await expect(running).resolves.toEqual({ stored: 5000, duplicates: 0 });
    await late;
    await closing;
    await expect(store.insert([ev('later', 'd', Date.now(), {})])).rejects.toThrow('closed');
  });
});

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventStore, floodCuts, storedTimestamp, TIMESTAMP_WINDOW } from './event-store.js';
import { parseFilter } from './explorer-filters.js';
import { ExplorerQueries, MAX_GROUPS } from './explorer-queries.js';
import type { IngestedEvent } from './ingestion-decoder.js';

/** The explorer's bounds (issue 13): on timestamps, buckets, rows, filters, eviction and recovery after a hard kill. */

const DAY = 86_400_000;
let counter = 0;
const ev = (event: string, ts: number, properties: Record<string, unknown> = {}, distinctId = 'd'): IngestedEvent => ({
  uuid: `bounds-${++counter}`,
  event,
  distinct_id: distinctId,
  timestampMs: ts,
  properties,
});

describe('timestamps are kept within a window around arrival', () => {
  it('keeps a plausible timestamp, and replaces one outside the window with the arrival time', () => {
    const now = Date.parse('2026-11-30T12:00:00Z');
    expect(storedTimestamp(now - 5 * DAY, now)).toEqual({ ms: now - 5 * DAY, clamped: false });
    expect(storedTimestamp(now + TIMESTAMP_WINDOW.futureMs + 1, now)).toEqual({ ms: now, clamped: true });
    expect(storedTimestamp(now - TIMESTAMP_WINDOW.pastMs - 1, now)).toEqual({ ms: now, clamped: true });
    expect(storedTimestamp(-8.64e15, now)).toEqual({ ms: now, clamped: true });
    expect(storedTimestamp(8.64e15, now)).toEqual({ ms: now, clamped: true });
    expect(storedTimestamp(NaN, now)).toEqual({ ms: now, clamped: true });
  });

  it('stores events at the ends of the Date range at their arrival, keeping what the client said', async () => {
    const store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 1000 });
    const arrived = Date.now();
    await store.insert([ev('api_error', -8.64e15, { error_type: 'x' }), ev('api_error', 8.64e15, { error_type: 'x' })], arrived);
    const rows = await store.query<{ ts_ms: number; properties: string }>('SELECT ts_ms, properties FROM events ORDER BY seq');
    expect(rows.map((r) => r.ts_ms)).toEqual([arrived, arrived]);
    expect(JSON.parse(rows[0].properties).$explorer_client_timestamp).toBe('-271821-04-20T00:00:00.000Z');
    const errors = await new ExplorerQueries(store).errors({});
    expect(errors.buckets.length).toBe(1);
    await store.close();
  });
});

describe('every answer is bounded', () => {
  let store: EventStore;
  let queries: ExplorerQueries;
  const now = Date.now();

  beforeAll(async () => {
    store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 1_000_000 });
    queries = new ExplorerQueries(store);
    // Events that arrived five years apart (a backfill): each within its own window, years apart in all.
    await store.insert(
      [ev('api_request', now - 5 * 365 * DAY, { endpoint: '/old', status_code: 200, response_time_ms: 1 })],
      now - 5 * 365 * DAY,
    );
    await store.insert([ev('api_error', now - 5 * 365 * DAY, { endpoint: '/old', error_type: 'old' })], now - 5 * 365 * DAY);
    const many: IngestedEvent[] = [];
    for (let i = 0; i < 1000; i += 1) {
      many.push(ev('api_request', now - i, { endpoint: `/e/${i}`, method: 'GET', status_code: 500, response_time_ms: i }));
      many.push(ev('api_error', now - i, { endpoint: `/e/${i}`, method: 'GET', status_code: 500, error_type: `type_${i % 300}` }));
    }
    await store.insert(many, now);
  });
  afterAll(() => store.close());

  it('draws any span in at most 121 buckets', async () => {
    for (const filter of [{}, { from: 0 }, { from: 0, to: 253402300799999 }]) {
      const performance = await queries.performance(filter);
      expect(performance.over_time.length).toBeLessThanOrEqual(121);
      const errors = await queries.errors(filter);
      expect(errors.buckets.length).toBeLessThanOrEqual(121);
      expect(new Set(errors.over_time.map((r) => r.bucket)).size).toBeLessThanOrEqual(121);
    }
  });

  it('lists the largest groups and says how many more there are', async () => {
    const performance = await queries.performance({});
    expect(performance.endpoints).toHaveLength(MAX_GROUPS);
    expect(performance.endpoints_more).toBe(1001 - MAX_GROUPS);
    const errors = await queries.errors({});
    expect(errors.total).toBe(1001);
    expect(errors.by_type.length + errors.by_type_more).toBe(301);
    expect(errors.by_endpoint.length + errors.by_endpoint_more).toBe(1001);
    // Over time: the 10 most frequent types one by one, the rest together.
    expect(new Set(errors.over_time.map((r) => r.error_type)).size).toBeLessThanOrEqual(11);
    expect(errors.over_time.reduce((sum, r) => sum + r.count, 0)).toBe(1001);
  });
});

describe('filters out of range are the caller’s mistake', () => {
  it.each([
    ['since=999999999999d', { since: '999999999999d' }],
    ['since of 500 digits', { since: `${'9'.repeat(499)}d` }],
    ['to past year 9999', { to: '99999999999999999999' }],
    ['from before 1970', { from: '1969-12-31T00:00:00Z' }],
    ['from after to', { from: '2030-01-01', to: '2020-01-01' }],
  ])('%s: 400', (_label, query) => {
    expect(() => parseFilter(query)).toThrow(expect.objectContaining({ status: 400 }));
  });

  it('accepts the longest since (36500d) and the whole range', () => {
    expect(parseFilter({ since: '36500d' }, 36_600 * DAY).from).toBe(100 * DAY);
    expect(parseFilter({ from: '0', to: '253402300799999' })).toMatchObject({ from: 0, to: 253402300799999 });
  });
});

describe('eviction past maxEvents is fair to the events a flood did not send', () => {
  it('takes the excess from the arrival minutes over their share first, lowering the largest to one level', () => {
    expect(
      floodCuts(
        [
          { slot: 1, n: 90 },
          { slot: 2, n: 50 },
          { slot: 3, n: 5 },
        ],
        10,
        50,
      ),
    ).toEqual([
      { slot: 1, cut: 45 },
      { slot: 2, cut: 5 },
    ]);
    // More excess than the floods hold above their share: they go down to the share, the rest comes from the oldest.
    expect(floodCuts([{ slot: 1, n: 30 }], 10, 50)).toEqual([{ slot: 1, cut: 20 }]);
    expect(floodCuts([{ slot: 1, n: 9 }], 10, 50)).toEqual([]);
  });

  it('three floods of one minute each do not evict events that arrived before them', async () => {
    const store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 20_000 });
    const t = Date.now() - 10 * 60_000;
    for (let minute = 0; minute < 5; minute += 1) {
      await store.insert(
        Array.from({ length: 200 }, (_, i) => ev('real', t, { i }, `real-${minute}`)),
        t + minute * 60_000,
      );
    }
    for (let flood = 0; flood < 3; flood += 1) {
      await store.insert(
        Array.from({ length: 9000 }, (_, i) => ev('flood', t, { i }, `flood-${flood}`)),
        t + (6 + flood) * 60_000,
      );
    }
    await store.prune();
    const [{ real, total }] = await store.query<{ real: number; total: number }>(
      `SELECT count(*) FILTER (WHERE event = 'real') AS real, count(*) AS total FROM events`,
    );
    expect(real).toBe(1000);
    expect(total).toBe(20_000);
    await store.close();
  });

  it('without a flood, still the earliest arrived go first', async () => {
    const store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 5 });
    const t = Date.now() - 60 * 60_000;
    for (let i = 0; i < 8; i += 1) await store.insert([ev(`e${i}`, t)], t + i * 60_000);
    expect(await store.prune()).toBe(3);
    expect((await store.query<{ event: string }>('SELECT event FROM events ORDER BY seq')).map((r) => r.event)).toEqual([
      'e3',
      'e4',
      'e5',
      'e6',
      'e7',
    ]);
    await store.close();
  });
});

describe('a database hard-killed before its first clean shutdown', () => {
  it('opens, with every committed event, even when its write-ahead log holds the ALTER TABLE of older explorers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'explorer-wal-'));
    try {
      const path = join(dir, 'events.duckdb');
      // What the explorer before this fix did on a new file, then kill -9: DuckDB 1.5.5 cannot replay that log at start-up.
      const script = `
        import { DuckDBInstance } from '@duckdb/node-api';
        const instance = await DuckDBInstance.create(${JSON.stringify(path)});
        const c = await instance.connect();
        await c.run(\`CREATE SEQUENCE IF NOT EXISTS event_seq;
          CREATE TABLE IF NOT EXISTS events (seq BIGINT DEFAULT nextval('event_seq'), uuid VARCHAR NOT NULL, event VARCHAR NOT NULL,
            distinct_id VARCHAR NOT NULL, ts_ms BIGINT NOT NULL, received_ms BIGINT NOT NULL, source VARCHAR NOT NULL, request_id VARCHAR,
            session_id VARCHAR, endpoint VARCHAR, method VARCHAR, status_code INTEGER, latency_ms DOUBLE, error_type VARCHAR, properties VARCHAR NOT NULL);
          ALTER TABLE events ADD COLUMN IF NOT EXISTS linked_id VARCHAR;\`);
        await c.run(\`INSERT INTO events (uuid, event, distinct_id, ts_ms, received_ms, source, request_id, properties)
          VALUES ('u1', 'kept', 'd', 1, 1, 'backend', 'before-kill', '{}'), ('u2', 'kept', 'd', 2, 2, 'backend', 'before-kill', '{}')\`);
        process.kill(process.pid, 'SIGKILL');`;
      spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), timeout: 20_000 });
      expect(existsSync(`${path}.wal`)).toBe(true);
      const store = await EventStore.open(path, { retentionDays: 0, maxEvents: 100 });
      expect((await new ExplorerQueries(store).journey({ request_id: 'before-kill' })).events).toHaveLength(2);
      expect(await store.insert([ev('after', Date.now(), { request_id: 'before-kill' })])).toEqual({ stored: 1, duplicates: 0 });
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

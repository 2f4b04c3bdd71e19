import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { IngestedEvent } from './ingestion-decoder.js';

export interface RetentionSettings {
  retentionDays: number;
  maxEvents: number;
}

/**
 * The window around arrival a client's timestamp must fall in: up to a year before
 * the event arrived, up to a day after (PostHog replaces a timestamp more than 23 h
 * ahead with the arrival time too). Outside it, the event is stored at its arrival
 * time and its own timestamp is kept in `$explorer_client_timestamp`: a clock that
 * wrong says nothing about when the event happened, and timestamps at the ends of
 * JavaScript's Date range must not reach the charts.
 */
export const TIMESTAMP_WINDOW = { pastMs: 366 * 86_400_000, futureMs: 86_400_000 };
/** Rows per insert statement: a big batch is stored slice by slice, and reads queued meanwhile run between slices. */
export const INSERT_SLICE = 2_000;
/** Arrival slots for fair eviction: one minute each. */
const SLOT_MS = 60_000;
/**
 * When the store is over `maxEvents`, the events of any arrival minute holding more
 * than this share of the cap (at least 1000 events) go first, that minute's latest
 * first; only then the earliest arrived. A flood thus evicts its own events before
 * anyone else's.
 */
export const FLOOD_SHARE = 0.1;
export const floodShareOf = (maxEvents: number) => Math.max(1000, Math.floor(maxEvents * FLOOD_SHARE));

/** The time an event is stored at: its own, unless outside TIMESTAMP_WINDOW around `receivedMs`. */
export function storedTimestamp(timestampMs: number, receivedMs: number): { ms: number; clamped: boolean } {
  const ok =
    Number.isFinite(timestampMs) &&
    timestampMs >= receivedMs - TIMESTAMP_WINDOW.pastMs &&
    timestampMs <= receivedMs + TIMESTAMP_WINDOW.futureMs;
  return ok ? { ms: Math.round(timestampMs), clamped: false } : { ms: receivedMs, clamped: true };
}

/**
 * Opens the DuckDB file. DuckDB 1.5.5 cannot replay, at start-up, a write-ahead log
 * that holds certain catalog changes ("GetDefaultDatabase with no default database
 * set"), which a hard kill of an older explorer could leave behind. Such a log
 * replays when the file is attached to an in-memory database instead; the file is
 * then checkpointed (the log folded in) and opened as usual.
 */
async function openInstance(path: string): Promise<DuckDBInstance> {
  try {
    return await DuckDBInstance.create(path);
  } catch (error) {
    if (path === ':memory:' || !/replaying WAL/i.test((error as Error).message)) throw error;
    const rescue = await DuckDBInstance.create(':memory:');
    const connection = await rescue.connect();
    try {
      await connection.run(`ATTACH '${path.replace(/'/g, "''")}' AS rescued`);
      await connection.run('CHECKPOINT rescued');
      await connection.run('DETACH rescued');
    } finally {
      connection.closeSync();
      rescue.closeSync();
    }
    return DuckDBInstance.create(path);
  }
}

/** Frontend events are the ones posthog-js sends (`$lib: web`); everything else came from a server. */
export function eventSource(properties: Record<string, unknown>): 'frontend' | 'backend' {
  return properties.$lib === 'web' || properties.$lib === 'posthog-js' ? 'frontend' : 'backend';
}

const clientTime = (ms: number) => (Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : String(ms));
const str = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value.slice(0, 500) : null);
const num = (value: unknown): number | null => {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : null;
};

/**
 * How many of each over-share arrival slot's events to delete so that `excess` go:
 * the largest slots are lowered to one common level (never below `share`), so a
 * flood loses its own events first and two floods lose alike.
 */
export function floodCuts(slots: { slot: number; n: number }[], share: number, excess: number): { slot: number; cut: number }[] {
  const over = slots.filter((s) => s.n > share);
  if (excess <= 0 || over.length === 0) return [];
  const above = (level: number) => over.reduce((sum, s) => sum + Math.max(0, s.n - level), 0);
  let level = share;
  if (above(share) > excess) {
    // The highest level that still removes at least `excess`.
    let lo = share;
    let hi = Math.max(...over.map((s) => s.n));
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (above(mid) >= excess) lo = mid;
      else hi = mid - 1;
    }
    level = lo;
  }
  let extra = Math.max(0, above(level) - excess);
  const cuts: { slot: number; cut: number }[] = [];
  for (const s of over) {
    let cut = Math.max(0, s.n - level);
    const spare = Math.min(extra, cut);
    cut -= spare;
    extra -= spare;
    if (cut > 0) cuts.push({ slot: s.slot, cut });
  }
  return cuts;
}

/** BIGINTs (counts, epoch ms) as numbers, so rows serialise as JSON. */
function plainRow(row: Record<string, unknown>): Record<string, unknown> {
  for (const key of Object.keys(row)) if (typeof row[key] === 'bigint') row[key] = Number(row[key]);
  return row;
}

const STORED_COLUMNS =
  'uuid, event, distinct_id, ts_ms, received_ms, source, request_id, session_id, endpoint, method, status_code, latency_ms, error_type, properties, linked_id';

/**
 * The events, in one DuckDB table. The columns the pages filter and group on
 * (request id, session, endpoint, status, latency, error type) are pulled out of
 * the properties when an event is stored; the properties are kept whole as JSON
 * text. An event whose `uuid` is already stored is skipped: a retried batch is
 * stored once. (No primary key: DuckDB's index kept the file growing under
 * retention; a join against the uuid column is as fast at these sizes.)
 *
 * DuckDB runs one statement at a time per connection; every call goes through
 * `exclusive`, so concurrent requests queue instead of interleaving.
 */
export class EventStore {
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private storedSincePrune = 0;
  private readonly inserting = new Set<Promise<unknown>>();

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
    private readonly retention: RetentionSettings,
  ) {}

  static async open(path: string, retention: RetentionSettings): Promise<EventStore> {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const instance = await openInstance(path);
    const connection = await instance.connect();
    // The schema change and the checkpoint right after it: the write-ahead log of a new file then
    // never holds catalog changes, which DuckDB 1.5.5 fails to replay after a hard kill
    // (`ALTER TABLE … ADD COLUMN` on a table with a sequence default did, before the first clean shutdown).
    await connection.run(`
      CREATE SEQUENCE IF NOT EXISTS event_seq;
      CREATE TABLE IF NOT EXISTS events (
        seq BIGINT DEFAULT nextval('event_seq'),
        uuid VARCHAR NOT NULL,
        event VARCHAR NOT NULL,
        distinct_id VARCHAR NOT NULL,
        ts_ms BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        request_id VARCHAR,
        session_id VARCHAR,
        endpoint VARCHAR,
        method VARCHAR,
        status_code INTEGER,
        latency_ms DOUBLE,
        error_type VARCHAR,
        properties VARCHAR NOT NULL,
        -- $identify's anonymous id: the browser's events before sign-in belong to the user's journey too.
        linked_id VARCHAR
      );
    `);
    // Files from before linked_id existed get the column, then a checkpoint at once.
    const [{ n }] = (
      await connection.runAndReadAll(
        `SELECT count(*) AS n FROM duckdb_columns() WHERE database_name = current_database() AND table_name = 'events' AND column_name = 'linked_id'`,
      )
    ).getRowObjectsJS();
    if (Number(n) === 0) await connection.run('ALTER TABLE events ADD COLUMN linked_id VARCHAR');
    if (path !== ':memory:') await connection.run('CHECKPOINT');
    await connection.run(`CREATE TEMP TABLE incoming AS SELECT ${STORED_COLUMNS} FROM events LIMIT 0`);
    const store = new EventStore(instance, connection, retention);
    await store.prune();
    return store;
  }

  /**
   * Stores the events not already stored; answers how many were new and how many were repeats.
   * In slices of INSERT_SLICE rows, each its own statement: reads queued meanwhile run between
   * slices, so a batch of 85 000 events does not hold up the pages. (A slice stored before a
   * failure stays; the client's retry adds only the rest, as uuids are stored once.)
   */
  async insert(events: IngestedEvent[], receivedMs = Date.now()): Promise<{ stored: number; duplicates: number }> {
    const done = (async () => {
      let stored = 0;
      for (let start = 0; start < events.length; start += INSERT_SLICE) {
        const slice = events.slice(start, start + INSERT_SLICE);
        // The first slice is refused once the store closes; the rest of a started batch is finished.
        const added = await this.exclusive(() => this.insertSlice(slice, receivedMs), start > 0);
        stored += added;
        // Bounded between the periodic prunes too: a flood of events prunes as it goes.
        this.storedSincePrune += added;
        if (this.storedSincePrune > Math.max(1000, this.retention.maxEvents / 10)) {
          this.storedSincePrune = 0;
          void this.prune().catch(() => undefined);
        }
      }
      return { stored, duplicates: events.length - stored };
    })();
    this.inserting.add(done);
    try {
      return await done;
    } finally {
      this.inserting.delete(done);
    }
  }

  private async insertSlice(events: IngestedEvent[], receivedMs: number): Promise<number> {
    // The rows go through DuckDB's appender into an empty staging table (much faster than
    // bound parameters), then into `events` in one statement that skips known uuids.
    try {
      const appender = await this.connection.createAppender('incoming');
      try {
        for (const e of events) this.appendRow(appender, e, receivedMs);
      } finally {
        appender.closeSync();
      }
      // The same uuid twice in one batch: the first one is kept. In arrival order, so that
      // `seq` orders events of the same millisecond as their client sent them.
      const result = await this.connection.run(
        `INSERT INTO events (${STORED_COLUMNS})
         SELECT ${STORED_COLUMNS} FROM incoming
          WHERE NOT EXISTS (SELECT 1 FROM events WHERE events.uuid = incoming.uuid)
            AND rowid IN (SELECT min(rowid) FROM incoming GROUP BY uuid)
          ORDER BY rowid`,
      );
      return result.rowsChanged;
    } finally {
      // Emptied whatever happened, so a failed batch never leaks rows into the next one.
      await this.connection.run('DELETE FROM incoming');
    }
  }

  private appendRow(appender: DuckDBAppender, e: IngestedEvent, receivedMs: number): void {
    const p = e.properties;
    const text = (value: string | null) => (value === null ? appender.appendNull() : appender.appendVarchar(value));
    appender.appendVarchar(e.uuid);
    appender.appendVarchar(e.event);
    appender.appendVarchar(e.distinct_id);
    const time = storedTimestamp(e.timestampMs, receivedMs);
    appender.appendBigInt(BigInt(time.ms));
    appender.appendBigInt(BigInt(receivedMs));
    appender.appendVarchar(eventSource(p));
    text(str(p.request_id));
    text(str(p.$session_id));
    text(str(p.endpoint));
    text(str(p.method));
    const status = num(p.status_code);
    if (status !== null && Number.isInteger(status) && Math.abs(status) < 2 ** 31) appender.appendInteger(status);
    else appender.appendNull();
    const latency = num(p.response_time_ms ?? p.duration_ms);
    if (latency === null) appender.appendNull();
    else appender.appendDouble(latency);
    text(str(p.error_type));
    appender.appendVarchar(JSON.stringify(time.clamped ? { ...p, $explorer_client_timestamp: clientTime(e.timestampMs) } : p));
    text(e.event === '$identify' ? str(p.$anon_distinct_id) : null);
    appender.endRow();
  }

  /** Rows of a read query, as plain JSON values (BIGINTs as numbers). */
  async query<T = Record<string, unknown>>(sql: string, values: DuckDBValue[] = []): Promise<T[]> {
    return this.exclusive(async () => {
      const reader = await this.connection.runAndReadAll(sql, values);
      return reader.getRowObjectsJS().map(plainRow) as T[];
    });
  }

  /**
   * Deletes events that arrived longer ago than the retention period, then the
   * earliest arrived past `maxEvents`; answers how many went. By arrival, not by
   * the client's timestamp, which a skewed clock or a backfill can put anywhere.
   */
  async prune(now = Date.now()): Promise<number> {
    return this.exclusive(async () => {
      this.storedSincePrune = 0;
      let removed = 0;
      if (this.retention.retentionDays > 0) {
        const cutoff = now - this.retention.retentionDays * 86_400_000;
        removed += (await this.connection.run('DELETE FROM events WHERE received_ms < $1', [cutoff])).rowsChanged;
      }
      const count = Number((await this.connection.runAndReadAll('SELECT count(*) AS n FROM events')).getRowObjectsJS()[0].n);
      let excess = count - this.retention.maxEvents;
      if (excess > 0) {
        // First from the arrival minutes over their share (a flood), each lowered toward one level.
        const share = floodShareOf(this.retention.maxEvents);
        const slots = (
          await this.connection.runAndReadAll(
            `SELECT received_ms // ${SLOT_MS} AS slot, count(*) AS n FROM events GROUP BY slot HAVING count(*) > $1 ORDER BY n DESC`,
            [share],
          )
        )
          .getRowObjectsJS()
          .map((r) => ({ slot: Number(r.slot), n: Number(r.n) }));
        for (const { slot, cut } of floodCuts(slots, share, excess)) {
          const gone = (
            await this.connection.run(
              `DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE received_ms >= $1 AND received_ms < $2 ORDER BY received_ms DESC, seq DESC LIMIT $3)`,
              [slot * SLOT_MS, (slot + 1) * SLOT_MS, cut],
            )
          ).rowsChanged;
          removed += gone;
          excess -= gone;
        }
      }
      if (excess > 0) {
        removed += (
          await this.connection.run('DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY received_ms, seq LIMIT $1)', [excess])
        ).rowsChanged;
      }
      // Frees the deleted rows' blocks for reuse, so the file stops growing.
      if (removed > 0) await this.connection.run('CHECKPOINT');
      return removed;
    });
  }

  /**
   * Refuses new work, lets what is queued finish, then closes. Awaited at
   * application shutdown, after the HTTP server stopped.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Batches already started finish (their later slices queue after this point).
    await Promise.allSettled([...this.inserting]);
    await this.chain;
    this.connection.closeSync();
    this.instance.closeSync();
  }

  private exclusive<T>(work: () => Promise<T>, continuing = false): Promise<T> {
    if (this.closed && !continuing) return Promise.reject(new Error('The event store is closed.'));
    const run = this.chain.then(work);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { IngestedEvent } from './ingestion-decoder.js';

export interface RetentionSettings {
  retentionDays: number;
  maxEvents: number;
}

/** Frontend events are the ones posthog-js sends (`$lib: web`); everything else came from a server. */
export function eventSource(properties: Record<string, unknown>): 'frontend' | 'backend' {
  return properties.$lib === 'web' || properties.$lib === 'posthog-js' ? 'frontend' : 'backend';
}

const str = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value.slice(0, 500) : null);
const num = (value: unknown): number | null => {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : null;
};

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

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
    private readonly retention: RetentionSettings,
  ) {}

  static async open(path: string, retention: RetentionSettings): Promise<EventStore> {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const instance = await DuckDBInstance.create(path);
    const connection = await instance.connect();
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
        properties VARCHAR NOT NULL
      );
      -- $identify's anonymous id: the browser's events before sign-in belong to the user's journey too.
      ALTER TABLE events ADD COLUMN IF NOT EXISTS linked_id VARCHAR;
      CREATE TEMP TABLE incoming AS SELECT ${STORED_COLUMNS} FROM events LIMIT 0;
    `);
    const store = new EventStore(instance, connection, retention);
    await store.prune();
    return store;
  }

  /** Stores the events not already stored; answers how many were new and how many were repeats. */
  async insert(events: IngestedEvent[], receivedMs = Date.now()): Promise<{ stored: number; duplicates: number }> {
    let stored = 0;
    await this.exclusive(async () => {
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
        stored = result.rowsChanged;
      } finally {
        // Emptied whatever happened, so a failed batch never leaks rows into the next one.
        await this.connection.run('DELETE FROM incoming');
      }
    });
    // Bounded between the periodic prunes too: a flood of events prunes as it goes.
    this.storedSincePrune += stored;
    if (this.storedSincePrune > Math.max(1000, this.retention.maxEvents / 10)) void this.prune().catch(() => undefined);
    return { stored, duplicates: events.length - stored };
  }

  private appendRow(appender: DuckDBAppender, e: IngestedEvent, receivedMs: number): void {
    const p = e.properties;
    const text = (value: string | null) => (value === null ? appender.appendNull() : appender.appendVarchar(value));
    appender.appendVarchar(e.uuid);
    appender.appendVarchar(e.event);
    appender.appendVarchar(e.distinct_id);
    appender.appendBigInt(BigInt(Math.round(e.timestampMs)));
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
    appender.appendVarchar(JSON.stringify(p));
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
      if (count > this.retention.maxEvents) {
        removed += (
          await this.connection.run(
            'DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY received_ms, seq LIMIT $1)',
            [count - this.retention.maxEvents],
          )
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
    await this.chain;
    this.connection.closeSync();
    this.instance.closeSync();
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('The event store is closed.'));
    const run = this.chain.then(work);
    this.chain = run.catch(() => undefined);
    return run;
  }

}

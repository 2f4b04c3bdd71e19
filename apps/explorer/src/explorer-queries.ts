import { listValue, type DuckDBValue } from '@duckdb/node-api';
import type { EventStore } from './event-store.js';
import { withoutFields } from './without-fields.js';

/** The filters every page shares. Times are epoch milliseconds. */
export interface EventFilter {
  /** `distinct_id`: the user (or the browser, before it signs in). */
  user?: string;
  /** An endpoint template as the module reports it (`/items/:id`). */
  endpoint?: string;
  /** One status (`503`) or a class (`5xx`). */
  status?: string;
  /** For the Errors page: one `error_type`. */
  errorType?: string;
  from?: number;
  to?: number;
}

export type JourneyKey = { request_id: string } | { distinct_id: string } | { session_id: string };

/** One event of a journey, as the JSON API returns it. */
export interface JourneyEvent {
  uuid: string;
  event: string;
  timestamp: string;
  distinct_id: string;
  source: 'frontend' | 'backend';
  properties: Record<string, unknown>;
}

/** One `api_request` row with whether it was slow and its error type (the Requests pages). */
export interface RequestRow {
  ts_ms: number;
  method: string | null;
  endpoint: string | null;
  status_code: number | null;
  latency_ms: number | null;
  distinct_id: string;
  request_id: string | null;
  session_id: string | null;
  slow: boolean;
  error_type: string | null;
}

interface JourneyRow {
  uuid: string;
  event: string;
  ts_ms: number;
  distinct_id: string;
  source: JourneyEvent['source'];
  request_id: string | null;
  session_id: string | null;
  seq: number;
  properties_bytes: number;
  properties: string | null;
}

/** Latency percentiles of `api_request`, per endpoint or per bucket of time. */
interface LatencyRow {
  requests: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

const MAX_LIMIT = 1000;
/**
 * Properties as stored, unless an event's are over 64 KiB: then NULL, and their size.
 * A page of 1000 events of 1 MiB each would otherwise take a gigabyte to answer.
 */
const MAX_PROPERTIES_BYTES = 64 * 1024;
const CAPPED_PROPERTIES = `CASE WHEN strlen(properties) <= ${MAX_PROPERTIES_BYTES} THEN properties END AS properties, strlen(properties) AS properties_bytes`;
/** Bucket widths for charts over time; the narrowest that gives at most `MAX_BUCKETS`. */
const BUCKETS_MS = [1_000, 10_000, 60_000, 5 * 60_000, 15 * 60_000, 3_600_000, 6 * 3_600_000, 86_400_000];
const MAX_BUCKETS = 120;
/**
 * Rows of a grouped list (endpoints, error types): the largest groups, and how many
 * more there are (`…_more`), so 30 000 endpoints answer in kilobytes, not megabytes.
 */
export const MAX_GROUPS = 200;
/** Error types drawn over time one by one; the rest are one `(other)` series. */
const MAX_SERIES = 10;
/** Properties one journey answer carries in all: past it, older events' properties are left out (and their size said). */
const JOURNEY_PROPERTIES_BUDGET = 2 * 1024 * 1024;
/** Longest message of an error in the `recent` list. */
const MAX_MESSAGE = 2_000;
const clip = (value: unknown) =>
  typeof value === 'string' && value.length > MAX_MESSAGE ? `${value.slice(0, MAX_MESSAGE)}…` : (value ?? null);

const iso = (ms: number) => new Date(ms).toISOString();
function round(n: number): number;
function round(n: number | null): number | null;
function round(n: number | null): number | null {
  return n === null || n === undefined ? null : Math.round(n * 100) / 100;
}

/** Every bucket start from the first to the last of `starts` (sorted), empty ones included. */
function bucketRange(starts: number[], bucketMs: number): number[] {
  if (starts.length === 0) return [];
  const range: number[] = [];
  // Bounded whatever the data: bucketFor keeps the span within MAX_BUCKETS widths.
  for (let b = starts[0]; b <= starts[starts.length - 1] && range.length <= MAX_BUCKETS; b += bucketMs) range.push(b);
  return range;
}

/** A WHERE clause with numbered parameters, built one condition at a time. */
class Where {
  private readonly conditions: string[] = [];
  readonly values: DuckDBValue[] = [];

  add(sql: (param: string) => string, value: DuckDBValue): this {
    this.values.push(value);
    this.conditions.push(sql(`$${this.values.length}`));
    return this;
  }

  toString(): string {
    return this.conditions.length ? `WHERE ${this.conditions.join(' AND ')}` : '';
  }
}

function filtered(event: string, filter: EventFilter): Where {
  const where = new Where().add((p) => `event = ${p}`, event);
  if (filter.user) where.add((p) => `distinct_id = ${p}`, filter.user);
  if (filter.endpoint) where.add((p) => `endpoint = ${p}`, filter.endpoint);
  // api_error carries the type; other events match through their request's api_error.
  if (filter.errorType) {
    where.add(
      (p) =>
        event === 'api_error'
          ? `error_type = ${p}`
          : `request_id IN (SELECT request_id FROM events WHERE event = 'api_error' AND error_type = ${p})`,
      filter.errorType,
    );
  }
  if (filter.from !== undefined) where.add((p) => `ts_ms >= ${p}`, Math.floor(filter.from));
  if (filter.to !== undefined) where.add((p) => `ts_ms <= ${p}`, Math.ceil(filter.to));
  const status = filter.status?.trim().toLowerCase();
  if (status && /^[1-5]xx$/.test(status)) {
    const base = Number(status[0]) * 100;
    where.add((p) => `status_code >= ${p}`, base).add((p) => `status_code < ${p}`, base + 100);
  } else if (status && /^\d{3}$/.test(status)) {
    where.add((p) => `status_code = ${p}`, Number(status));
  }
  return where;
}

const limitOf = (limit: number | undefined, fallback: number) =>
  Math.min(Math.max(Math.floor(limit !== undefined && Number.isFinite(limit) ? limit : fallback), 1), MAX_LIMIT);

/**
 * The explorer's questions, each one SQL query over the events table. The JSON
 * API returns these answers as they are and the pages draw them, so a script
 * sees exactly what a person sees.
 */
export class ExplorerQueries {
  constructor(private readonly store: EventStore) {}

  /** `api_request` events, newest first, each with whether it was slow and its error type. */
  async requests(filter: EventFilter, limit?: number) {
    const where = filtered('api_request', filter);
    const n = limitOf(limit, 200);
    const rows = await this.store.query<RequestRow>(
      `SELECT r.ts_ms, r.method, r.endpoint, r.status_code, r.latency_ms, r.distinct_id, r.request_id, r.session_id,
              s.request_id IS NOT NULL AS slow, err.error_type
         FROM (SELECT * FROM events ${where} ORDER BY ts_ms DESC, seq DESC LIMIT ${n}) r
         LEFT JOIN (SELECT DISTINCT request_id FROM events WHERE event = 'slow_request' AND request_id IS NOT NULL) s USING (request_id)
         LEFT JOIN (SELECT request_id, any_value(error_type) AS error_type FROM events WHERE event = 'api_error' AND request_id IS NOT NULL GROUP BY request_id) err
           USING (request_id)
        ORDER BY r.ts_ms DESC`,
      where.values,
    );
    const [{ total }] = await this.store.query<{ total: number }>(`SELECT count(*) AS total FROM events ${where}`, where.values);
    return {
      total,
      requests: rows.map((r) => ({
        timestamp: iso(r.ts_ms),
        method: r.method,
        endpoint: r.endpoint,
        status_code: r.status_code,
        response_time_ms: round(r.latency_ms),
        distinct_id: r.distinct_id,
        request_id: r.request_id,
        session_id: r.session_id,
        slow: r.slow,
        error_type: r.error_type ?? null,
      })),
    };
  }

  /**
   * Every event of one request, user or session, frontend and backend
   * together, in time order (events of the same millisecond in arrival order).
   * Past `limit` the latest events are kept.
   */
  async journey(key: JourneyKey, limit?: number): Promise<{ events: JourneyEvent[]; truncated: boolean }> {
    // A user's journey includes the anonymous browser ids their `$identify` events linked to them,
    // as PostHog merges them into one person: the sign-up that happened before sign-in belongs to it.
    const match =
      'request_id' in key
        ? 'request_id = $1'
        : 'session_id' in key
          ? 'session_id = $1'
          : `distinct_id = $1 OR distinct_id IN (SELECT linked_id FROM events WHERE event = '$identify' AND distinct_id = $1 AND linked_id IS NOT NULL)`;
    const value = 'request_id' in key ? key.request_id : 'session_id' in key ? key.session_id : key.distinct_id;
    const n = limitOf(limit, MAX_LIMIT);
    const rows = await this.store.query<JourneyRow>(
      // Newest first, each event's properties count against JOURNEY_PROPERTIES_BUDGET; past it they are left out.
      `SELECT uuid, event, ts_ms, distinct_id, source, request_id, session_id, seq, properties_bytes,
              CASE WHEN shown AND sum(CASE WHEN shown THEN properties_bytes ELSE 0 END) OVER (ORDER BY ts_ms DESC, seq DESC ROWS UNBOUNDED PRECEDING) <= ${JOURNEY_PROPERTIES_BUDGET}
                   THEN properties END AS properties
         FROM (SELECT uuid, event, ts_ms, distinct_id, source, properties, strlen(properties) AS properties_bytes, strlen(properties) <= ${MAX_PROPERTIES_BYTES} AS shown,
                      request_id, session_id, seq FROM events WHERE ${match}
                ORDER BY ts_ms DESC, seq DESC LIMIT ${n + 1})
        ORDER BY ts_ms, seq`,
      [value],
    );
    const truncated = rows.length > n;
    return {
      truncated,
      events: (truncated ? rows.slice(1) : rows).map((r) => ({
        uuid: r.uuid,
        event: r.event,
        timestamp: iso(r.ts_ms),
        distinct_id: r.distinct_id,
        source: r.source,
        properties:
          r.properties === null
            ? { request_id: r.request_id, $session_id: r.session_id, $explorer_note: `properties of ${r.properties_bytes} bytes not shown` }
            : JSON.parse(r.properties),
      })),
    };
  }

  /** `api_error` grouped by type and by endpoint, counts over time, the latest ones with the newest traceback. */
  async errors(filter: EventFilter) {
    const where = filtered('api_error', filter);
    // The largest MAX_GROUPS groups, each row carrying the number of groups and of errors in all.
    const byType = await this.store.query<{ error_type: string; count: number; last_ms: number; groups: number; total: number }>(
      `SELECT error_type, count(*) AS count, max(ts_ms) AS last_ms, count(*) OVER () AS groups, sum(count(*)) OVER () AS total
         FROM events ${where} GROUP BY error_type ORDER BY count DESC, error_type LIMIT ${MAX_GROUPS}`,
      where.values,
    );
    const byEndpoint = await this.store.query<{
      method: string;
      endpoint: string;
      count: number;
      error_types: number;
      last_ms: number;
      groups: number;
    }>(
      `SELECT method, endpoint, count(*) AS count, count(DISTINCT error_type) AS error_types, max(ts_ms) AS last_ms, count(*) OVER () AS groups
         FROM events ${where} GROUP BY method, endpoint ORDER BY count DESC, endpoint, method LIMIT ${MAX_GROUPS}`,
      where.values,
    );
    const bucketMs = await this.bucketFor(where, filter);
    // The MAX_SERIES most frequent types one by one, the rest as `(other)`: at most MAX_BUCKETS × (MAX_SERIES + 1) rows.
    const series = byType.slice(0, MAX_SERIES).map((r) => r.error_type);
    const overTime = await this.store.query<{ bucket_ms: number; error_type: string; count: number }>(
      `SELECT (ts_ms // ${bucketMs}) * ${bucketMs} AS bucket_ms,
              CASE WHEN list_contains($${where.values.length + 1}::VARCHAR[], error_type) THEN error_type ELSE '(other)' END AS error_type, count(*) AS count
         FROM events ${where} GROUP BY ALL ORDER BY bucket_ms, error_type`,
      [...where.values, listValue(series)],
    );
    const latest = await this.store.query<{ ts_ms: number; distinct_id: string; properties: string | null; properties_bytes: number }>(
      `SELECT ts_ms, distinct_id, ${CAPPED_PROPERTIES} FROM events ${where} ORDER BY ts_ms DESC, seq DESC LIMIT 50`,
      where.values,
    );
    const recent = latest.map((r) => {
      const p = r.properties === null ? {} : JSON.parse(r.properties);
      return {
        timestamp: iso(r.ts_ms),
        error_type: clip(p.error_type),
        exception_type: clip(p.exception_type),
        error_message: clip(p.error_message),
        method: clip(p.method),
        endpoint: clip(p.endpoint),
        status_code: p.status_code ?? null,
        request_id: clip(p.request_id),
        session_id: clip(p.$session_id),
        distinct_id: r.distinct_id,
        traceback: p.traceback ?? null,
      };
    });
    const withTime = <R extends { last_ms: number; groups: number; total?: number }>(rows: R[]) =>
      rows.map((row) => ({ ...withoutFields(row, ['last_ms', 'groups', 'total']), last_seen: iso(row.last_ms) }));
    const more = (rows: { groups: number }[]) => Math.max(0, (rows[0]?.groups ?? 0) - rows.length);
    return {
      total: byType[0]?.total ?? 0,
      by_type: withTime(byType),
      by_type_more: more(byType),
      by_endpoint: withTime(byEndpoint),
      by_endpoint_more: more(byEndpoint),
      bucket_ms: bucketMs,
      buckets: bucketRange(
        overTime.map((r) => r.bucket_ms),
        bucketMs,
      ).map(iso),
      over_time: overTime.map((r) => ({ bucket: iso(r.bucket_ms), error_type: r.error_type, count: r.count })),
      latest: recent[0] ?? null,
      recent: recent.map((error) => withoutFields(error, ['traceback'])),
    };
  }

  /**
   * Per endpoint: requests, error rate (share answered 5xx), client error rate
   * (4xx), p50/p95/p99 of `response_time_ms` (linear interpolation between
   * ranks, DuckDB's `quantile_cont`) and `slow_request` count; and latency
   * percentiles over time.
   */
  async performance(filter: EventFilter) {
    const where = filtered('api_request', filter);
    const endpoints = await this.store.query<
      LatencyRow & {
        method: string | null;
        endpoint: string | null;
        error_rate: number;
        client_error_rate: number;
        max: number | null;
        slow_requests: number;
        groups: number;
      }
    >(
      `WITH r AS (
         SELECT method, endpoint, count(*) AS requests,
                avg(CASE WHEN status_code >= 500 THEN 1 ELSE 0 END) AS error_rate,
                avg(CASE WHEN status_code >= 400 AND status_code < 500 THEN 1 ELSE 0 END) AS client_error_rate,
                quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.95) AS p95, quantile_cont(latency_ms, 0.99) AS p99,
                max(latency_ms) AS max
           FROM events ${where} GROUP BY method, endpoint),
       -- The slow_request events of exactly the requests counted above (slow_request has no status of its own).
       s AS (SELECT method, endpoint, count(*) AS slow FROM events
              WHERE event = 'slow_request' AND request_id IN (SELECT request_id FROM events ${where})
              GROUP BY method, endpoint)
       SELECT r.*, coalesce(s.slow, 0) AS slow_requests, count(*) OVER () AS groups FROM r LEFT JOIN s USING (method, endpoint)
        ORDER BY r.requests DESC, r.endpoint, r.method LIMIT ${MAX_GROUPS}`,
      where.values,
    );
    const bucketMs = await this.bucketFor(where, filter);
    const overTime = await this.store.query<LatencyRow & { bucket_ms: number }>(
      `SELECT (ts_ms // ${bucketMs}) * ${bucketMs} AS bucket_ms, count(*) AS requests,
              quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.95) AS p95, quantile_cont(latency_ms, 0.99) AS p99
         FROM events ${where} GROUP BY bucket_ms ORDER BY bucket_ms`,
      where.values,
    );
    return {
      endpoints: endpoints.map((r) => ({
        method: r.method,
        endpoint: r.endpoint,
        requests: r.requests,
        error_rate: round(r.error_rate * 10_000) / 10_000,
        client_error_rate: round(r.client_error_rate * 10_000) / 10_000,
        p50_ms: round(r.p50),
        p95_ms: round(r.p95),
        p99_ms: round(r.p99),
        max_ms: round(r.max),
        slow_requests: r.slow_requests,
      })),
      endpoints_more: Math.max(0, (endpoints[0]?.groups ?? 0) - endpoints.length),
      bucket_ms: bucketMs,
      // Every bucket from the first to the last, empty ones too, so a chart shows the gaps in time.
      over_time: bucketRange(
        overTime.map((r) => r.bucket_ms),
        bucketMs,
      ).map((bucket) => {
        const r = overTime.find((row) => row.bucket_ms === bucket);
        return {
          bucket: iso(bucket),
          requests: r?.requests ?? 0,
          p50_ms: round(r?.p50 ?? null),
          p95_ms: round(r?.p95 ?? null),
          p99_ms: round(r?.p99 ?? null),
        };
      }),
    };
  }

  /** Counts for the page header. */
  async summary() {
    const [row] = await this.store.query<{
      events: number;
      requests: number;
      errors: number;
      frontend_events: number;
      users: number;
      sessions: number;
      last_ms: number | null;
    }>(
      `SELECT count(*) AS events,
              count(*) FILTER (WHERE event = 'api_request') AS requests,
              count(*) FILTER (WHERE event = 'api_error') AS errors,
              count(*) FILTER (WHERE source = 'frontend') AS frontend_events,
              count(DISTINCT distinct_id) AS users,
              count(DISTINCT session_id) AS sessions,
              max(ts_ms) AS last_ms
         FROM events`,
    );
    return { ...withoutFields(row, ['last_ms']), last_event: row.last_ms === null ? null : iso(row.last_ms) };
  }

  /** The narrowest bucket that draws the filtered range in at most MAX_BUCKETS bars. */
  private async bucketFor(where: Where, filter: EventFilter): Promise<number> {
    // The range the data selected actually spans (the filter only narrows it): `from=0` does not make year-wide bars.
    const [range] = await this.store.query<{ lo: number | null; hi: number | null }>(
      `SELECT min(ts_ms) AS lo, max(ts_ms) AS hi FROM events ${where}`,
      where.values,
    );
    const from = Math.max(range.lo ?? 0, filter.from ?? -Infinity);
    const to = Math.min(range.hi ?? 0, filter.to ?? Infinity);
    const span = Math.max(to - from, 0);
    // Past MAX_BUCKETS days, whole days wide enough: never more than MAX_BUCKETS (+1) bars, whatever the span.
    const day = BUCKETS_MS[BUCKETS_MS.length - 1];
    return BUCKETS_MS.find((b) => span / b <= MAX_BUCKETS) ?? Math.ceil(span / MAX_BUCKETS / day) * day;
  }
}

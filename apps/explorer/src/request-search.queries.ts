import type { DuckDBValue } from '@duckdb/node-api';
import type { EventStore } from './event-store.js';
import type { EventFilter, RequestRow } from './explorer-queries.js';

/** Columns the Requests table sorts on, by their name in the query string. */
const SORTS: Record<string, string> = {
  time: 'ts_ms',
  latency: 'latency_ms',
  status: 'status_code',
  endpoint: 'endpoint',
  method: 'method',
  user: 'distinct_id',
};
const MAX_PAGE = 500;

export interface RequestSearch {
  /** Substring of the endpoint, user, request id, session or an event name of the request. */
  q?: string;
  offset?: number;
  limit?: number;
  sort?: string;
  /** `asc` or `desc` (default). */
  dir?: string;
}

/** `x` as a LIKE pattern that matches it anywhere, its own `%` and `_` taken literally. */
export const contains = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * The Requests page: `api_request` with substring filters (user and endpoint
 * contain the text; `q` searches endpoint, user, request id, session and the
 * names of the request's other events), sorted by any column, one page at a time.
 */
export class RequestSearchQueries {
  constructor(private readonly store: EventStore) {}

  async search(filter: EventFilter, search: RequestSearch) {
    const values: DuckDBValue[] = [];
    const conditions = [`event = 'api_request'`];
    const add = (sql: string, value: DuckDBValue) => {
      values.push(value);
      conditions.push(sql.replaceAll('?', `$${values.length}`));
    };
    if (filter.user) add(`distinct_id ILIKE ? ESCAPE '\\'`, contains(filter.user));
    if (filter.endpoint) add(`endpoint ILIKE ? ESCAPE '\\'`, contains(filter.endpoint));
    if (filter.errorType)
      add(`request_id IN (SELECT request_id FROM events WHERE event = 'api_error' AND error_type = ?)`, filter.errorType);
    if (filter.from !== undefined) add('ts_ms >= ?', Math.floor(filter.from));
    if (filter.to !== undefined) add('ts_ms <= ?', Math.ceil(filter.to));
    const status = filter.status?.trim().toLowerCase();
    if (status && /^[1-5]xx$/.test(status)) {
      add('status_code >= ?', Number(status[0]) * 100);
      add('status_code < ?', Number(status[0]) * 100 + 100);
    } else if (status && /^\d{3}$/.test(status)) add('status_code = ?', Number(status));
    if (search.q) {
      values.push(contains(search.q));
      const p = `$${values.length}`;
      conditions.push(
        `(endpoint ILIKE ${p} ESCAPE '\\' OR distinct_id ILIKE ${p} ESCAPE '\\' OR request_id ILIKE ${p} ESCAPE '\\' OR session_id ILIKE ${p} ESCAPE '\\'
          OR request_id IN (SELECT request_id FROM events WHERE request_id IS NOT NULL AND event ILIKE ${p} ESCAPE '\\'))`,
      );
    }
    const where = `WHERE ${conditions.join(' AND ')}`;
    const column = SORTS[search.sort ?? 'time'] ?? 'ts_ms';
    const dir = search.dir === 'asc' ? 'ASC' : 'DESC';
    const limit = Math.min(Math.max(Math.floor(search.limit ?? 50), 1), MAX_PAGE);
    const offset = Math.max(Math.floor(search.offset ?? 0), 0);
    const rows = await this.store.query<RequestRow>(
      `SELECT r.ts_ms, r.method, r.endpoint, r.status_code, r.latency_ms, r.distinct_id, r.request_id, r.session_id,
              s.request_id IS NOT NULL AS slow, err.error_type
         FROM (SELECT * FROM events ${where} ORDER BY ${column} ${dir} NULLS LAST, seq ${dir} LIMIT ${limit} OFFSET ${offset}) r
         LEFT JOIN (SELECT DISTINCT request_id FROM events WHERE event = 'slow_request' AND request_id IS NOT NULL) s USING (request_id)
         LEFT JOIN (SELECT request_id, any_value(error_type) AS error_type FROM events WHERE event = 'api_error' AND request_id IS NOT NULL GROUP BY request_id) err
           USING (request_id)
        ORDER BY r.${column} ${dir} NULLS LAST, r.ts_ms DESC`,
      values,
    );
    const [{ total }] = await this.store.query<{ total: number }>(`SELECT count(*) AS total FROM events ${where}`, values);
    return {
      total,
      offset,
      limit,
      requests: rows.map((r) => ({
        timestamp: new Date(r.ts_ms).toISOString(),
        method: r.method,
        endpoint: r.endpoint,
        status_code: r.status_code,
        response_time_ms: r.latency_ms === null ? null : Math.round(r.latency_ms * 100) / 100,
        distinct_id: r.distinct_id,
        request_id: r.request_id,
        session_id: r.session_id,
        slow: r.slow,
        error_type: r.error_type ?? null,
      })),
    };
  }
}

import { createHash } from 'node:crypto';
import type { DuckDBValue } from '@duckdb/node-api';
import type { EventStore } from './event-store.js';
import type { EventFilter } from './explorer-queries.js';
import { withoutFields } from './without-fields.js';

/** One stack frame, most recent call last (Sentry's and PostHog's order). */
export interface IssueFrame {
  function: string | null;
  filename: string | null;
  lineno: number | null;
  colno: number | null;
  in_app: boolean;
  context_line?: string | null;
  pre_context?: string[];
  post_context?: string[];
}

/** One failing request (its `api_error`) or one `$exception` outside any request. */
export interface Occurrence {
  uuid: string;
  timestamp: string;
  ts_ms: number;
  distinct_id: string;
  request_id: string | null;
  session_id: string | null;
  method: string | null;
  endpoint: string | null;
  status_code: number | null;
  error_type: string | null;
  exception_type: string;
  message: string | null;
  exception_uuid: string | null;
  sentry_event_id: string | null;
  frames: IssueFrame[];
  traceback: string | null;
}

/** `4xx`: the client's mistake (a 4xx answer); `5xx`: the server's (a 5xx, or an exception outside a request). */
export type IssueKind = '4xx' | '5xx';

/** The errors the Errors page reads: every `api_error` and `$exception` in range, newest first, at most this many. */
const MAX_ERRORS = 5000;
const SPARK_BUCKETS = 24;

/** JSON as a client sent it: any shape, read field by field. */
type JsonObject = Record<string, unknown>;

/** An `api_error` or `$exception` row, its properties parsed (`{}` when over the size read). */
interface ErrorRow {
  uuid: string;
  event: string;
  ts_ms: number;
  distinct_id: string;
  request_id: string | null;
  session_id: string | null;
  endpoint: string | null;
  method: string | null;
  status_code: number | null;
  error_type: string | null;
  properties: string | null;
}

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);
const str = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);
const int = (value: unknown): number | null =>
  typeof value === 'number' && Number.isFinite(value) ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : null;

/** A frame is the app's own unless it is in node_modules or Node's internals (or the client said so). */
function inApp(filename: string | null, declared?: unknown): boolean {
  if (typeof declared === 'boolean' && !declared) return false;
  if (!filename) return false;
  return !/node_modules|^node:|^internal\/|\(native\)|^native /.test(filename);
}

/** A V8 stack (`    at fn (file:line:col)`, most recent first) as frames, most recent last. */
export function parseStack(stack: string | null): IssueFrame[] {
  if (!stack) return [];
  const frames: IssueFrame[] = [];
  for (const line of stack.split('\n')) {
    const match = /^\s*at (?:(.+?) \()?(.+?)(?::(\d+))?(?::(\d+))?\)?\s*$/.exec(line);
    if (!match) continue;
    const filename = match[2].replace(/^file:\/\//, '');
    frames.push({
      function: match[1] ?? null,
      filename,
      lineno: match[3] ? Number(match[3]) : null,
      colno: match[4] ? Number(match[4]) : null,
      in_app: inApp(filename),
    });
  }
  return frames.reverse();
}

/** The first exception of an event's `$exception_list`, when it is an object. */
function firstException(properties: JsonObject | undefined): JsonObject | undefined {
  const list = properties?.$exception_list;
  const first: unknown = Array.isArray(list) ? list[0] : isObject(list) ? list[0] : undefined;
  return isObject(first) ? first : undefined;
}

/** posthog-node's `$exception_list[0].stacktrace.frames` (already most recent last). */
function exceptionFrames(exception: JsonObject | undefined): IssueFrame[] {
  const stacktrace = exception?.stacktrace;
  const frames = isObject(stacktrace) ? stacktrace.frames : undefined;
  if (!Array.isArray(frames)) return [];
  return frames.filter(isObject).map((f) => {
    const filename = str(f.filename) ?? str(f.abs_path);
    return {
      function: str(f.function),
      filename,
      lineno: int(f.lineno),
      colno: int(f.colno),
      in_app: inApp(filename, f.in_app),
      context_line: str(f.context_line),
      pre_context: Array.isArray(f.pre_context) ? f.pre_context.map(String) : undefined,
      post_context: Array.isArray(f.post_context) ? f.post_context.map(String) : undefined,
    };
  });
}

/** The frame an issue is named after: the most recent frame of the app's own code (else the most recent one). */
export function topFrame(frames: IssueFrame[]): IssueFrame | null {
  for (let i = frames.length - 1; i >= 0; i -= 1) if (frames[i].in_app) return frames[i];
  return frames[frames.length - 1] ?? null;
}

/** A file name without the machine's path: from `src/`, `dist/` or `apps/` on, else the last two segments. */
export function shortFile(filename: string | null): string | null {
  if (!filename) return null;
  const match = /(?:^|\/)((?:apps|libs|src|dist|test)\/.*)$/.exec(filename);
  return match ? match[1] : filename.split('/').slice(-2).join('/');
}

/**
 * The fingerprint of an error, as PostHog Error Tracking and Sentry group them:
 * the exception type and the top in-app frame (function and file, not the line,
 * so an edit above it keeps the issue), with the in-app frame that called it.
 * Without frames, the type and the endpoint. 4xx and 5xx never share an issue.
 */
export function fingerprint(o: Pick<Occurrence, 'exception_type' | 'frames' | 'method' | 'endpoint' | 'status_code'>): {
  id: string;
  parts: string[];
} {
  const top = topFrame(o.frames);
  const kind = o.status_code !== null && o.status_code < 500 ? '4xx' : '5xx';
  // The top in-app frame, and the in-app frame that called it: a shared helper that builds errors
  // (a `providerError(...)`) would otherwise put every caller's error in one issue.
  const caller = top
    ? o.frames
        .slice(0, o.frames.indexOf(top))
        .reverse()
        .find((f) => f.in_app)
    : undefined;
  const name = (f: IssueFrame) => `${f.function ?? '?'} (${shortFile(f.filename) ?? '?'})`;
  const parts = top
    ? [o.exception_type, name(top), ...(caller ? [name(caller)] : [])]
    : [o.exception_type, `${o.method ?? ''} ${o.endpoint ?? ''}`.trim()];
  // A 400 and a 500 of the same code path are different problems.
  parts.push(kind);
  return { id: createHash('sha1').update(JSON.stringify(parts)).digest('hex').slice(0, 12), parts };
}

export interface IssueSummary {
  id: string;
  kind: IssueKind;
  exception_type: string;
  message: string | null;
  top_frame: { function: string | null; file: string | null; lineno: number | null } | null;
  error_types: string[];
  status_codes: number[];
  endpoints: string[];
  count: number;
  users: number;
  first_seen: string;
  last_seen: string;
  /** Counts per bucket across the range (`spark_from` … `spark_to`), oldest first. */
  sparkline: number[];
  latest_request_id: string | null;
}

interface Group {
  id: string;
  occurrences: Occurrence[];
}

/**
 * Errors as issues: every `api_error` (one per failing request) joined with the
 * `$exception` of the same request for its stack frames, and every `$exception`
 * outside a request, grouped by fingerprint.
 */
export class IssueQueries {
  constructor(private readonly store: EventStore) {}

  /** Every error in the filter's range (newest first, at most MAX_ERRORS) as occurrences. */
  async occurrences(filter: EventFilter): Promise<Occurrence[]> {
    const conditions = [`event IN ('api_error', '$exception')`];
    const values: DuckDBValue[] = [];
    const add = (sql: string, value: DuckDBValue) => {
      values.push(value);
      conditions.push(sql.replaceAll('?', `$${values.length}`));
    };
    if (filter.from !== undefined) add('ts_ms >= ?', Math.floor(filter.from));
    if (filter.to !== undefined) add('ts_ms <= ?', Math.ceil(filter.to));
    const rows = await this.store.query<ErrorRow>(
      `SELECT uuid, event, ts_ms, distinct_id, request_id, session_id, endpoint, method, status_code, error_type,
              CASE WHEN strlen(properties) <= 262144 THEN properties END AS properties
         FROM events WHERE ${conditions.join(' AND ')} ORDER BY ts_ms DESC, seq DESC LIMIT ${MAX_ERRORS}`,
      values,
    );
    const exceptions = new Map<string, ErrorRow & { p: JsonObject }>();
    const exceptionsByRequest = new Map<string, ErrorRow & { p: JsonObject }>();
    const apiErrorRequests = new Set<string>();
    const apiErrorExceptionUuids = new Set<string>();
    const parsed = rows.map((r) => ({
      ...r,
      p: r.properties ? (JSON.parse(r.properties) as JsonObject) : {},
    }));
    for (const r of parsed) {
      if (r.event === '$exception') {
        exceptions.set(r.uuid, r);
        if (r.request_id && !exceptionsByRequest.has(r.request_id)) exceptionsByRequest.set(r.request_id, r);
      } else {
        if (r.request_id) apiErrorRequests.add(r.request_id);
        const exceptionUuid = str(r.p.$exception_uuid);
        if (exceptionUuid) apiErrorExceptionUuids.add(exceptionUuid);
      }
    }
    const out: Occurrence[] = [];
    // What an occurrence says of its event row, whichever event stands for it.
    const rowFields = (r: ErrorRow) => ({
      uuid: r.uuid,
      timestamp: new Date(r.ts_ms).toISOString(),
      ts_ms: r.ts_ms,
      distinct_id: r.distinct_id,
      request_id: r.request_id,
      session_id: r.session_id,
      method: r.method,
      endpoint: r.endpoint,
      status_code: r.status_code,
      error_type: r.error_type,
    });
    for (const r of parsed) {
      const p = r.p;
      if (r.event === 'api_error') {
        const exceptionUuid = str(p.$exception_uuid);
        const exception =
          (exceptionUuid && exceptions.get(exceptionUuid)) || (r.request_id ? exceptionsByRequest.get(r.request_id) : undefined);
        const first = firstException(exception?.p);
        const frames = exceptionFrames(first);
        out.push({
          ...rowFields(r),
          exception_type: str(p.exception_type) ?? str(first?.type) ?? 'Error',
          message: str(p.error_message) ?? str(first?.value),
          exception_uuid: str(p.$exception_uuid) ?? exception?.uuid ?? null,
          sentry_event_id: str(p.sentry_event_id),
          frames: frames.length ? frames : parseStack(str(p.traceback)),
          traceback: str(p.traceback),
        });
      } else if (!(r.request_id && apiErrorRequests.has(r.request_id)) && !apiErrorExceptionUuids.has(r.uuid)) {
        // An exception no api_error stands for: a job, an event handler, a browser error.
        const first = firstException(p);
        out.push({
          ...rowFields(r),
          exception_type: str(first?.type) ?? str(p.$exception_type) ?? 'Error',
          message: str(first?.value) ?? str(p.$exception_message),
          exception_uuid: r.uuid,
          sentry_event_id: str(p.sentry_event_id),
          frames: exceptionFrames(first),
          traceback: null,
        });
      }
    }
    return out;
  }

  private matches(o: Occurrence, filter: EventFilter, q?: string): boolean {
    if (filter.user && !o.distinct_id.toLowerCase().includes(filter.user.toLowerCase())) return false;
    if (filter.endpoint && !(o.endpoint ?? '').toLowerCase().includes(filter.endpoint.toLowerCase())) return false;
    if (filter.errorType && o.error_type !== filter.errorType) return false;
    const status = filter.status?.toLowerCase();
    if (status && /^[1-5]xx$/.test(status) && (o.status_code === null || Math.floor(o.status_code / 100) !== Number(status[0])))
      return false;
    if (status && /^\d{3}$/.test(status) && o.status_code !== Number(status)) return false;
    if (q) {
      const needle = q.toLowerCase();
      const hay = [o.exception_type, o.message, o.endpoint, o.distinct_id, o.request_id, o.error_type]
        .filter(Boolean)
        .join('\n')
        .toLowerCase();
      if (!hay.includes(needle)) return false;
    }
    return true;
  }

  private async groups(filter: EventFilter, q?: string): Promise<{ groups: Group[]; from: number; to: number }> {
    const all = (await this.occurrences(filter)).filter((o) => this.matches(o, filter, q));
    const byId = new Map<string, Group>();
    for (const o of all) {
      const { id } = fingerprint(o);
      let group = byId.get(id);
      if (!group) byId.set(id, (group = { id, occurrences: [] }));
      group.occurrences.push(o);
    }
    const to = filter.to ?? Date.now();
    const from = filter.from ?? (all.length ? Math.min(...all.map((o) => o.ts_ms)) : to - 3_600_000);
    return { groups: [...byId.values()], from, to };
  }

  private summarise(group: Group, from: number, to: number): IssueSummary {
    const os = group.occurrences; // newest first
    const latest = os[0];
    const top = topFrame(latest.frames);
    const span = Math.max(to - from, 1);
    const sparkline = new Array(SPARK_BUCKETS).fill(0);
    for (const o of os) sparkline[Math.min(SPARK_BUCKETS - 1, Math.max(0, Math.floor(((o.ts_ms - from) / span) * SPARK_BUCKETS)))] += 1;
    const uniq = <T>(values: T[]) => [...new Set(values.filter((v) => v !== null && v !== undefined))] as NonNullable<T>[];
    return {
      id: group.id,
      kind: latest.status_code !== null && latest.status_code < 500 ? '4xx' : '5xx',
      exception_type: latest.exception_type,
      message: latest.message,
      top_frame: top ? { function: top.function, file: shortFile(top.filename), lineno: top.lineno } : null,
      error_types: uniq(os.map((o) => o.error_type)).sort(),
      status_codes: uniq(os.map((o) => o.status_code)).sort(),
      endpoints: uniq(os.map((o) => (o.endpoint ? `${o.method ?? ''} ${o.endpoint}`.trim() : null))).sort(),
      count: os.length,
      users: new Set(os.map((o) => o.distinct_id)).size,
      first_seen: os[os.length - 1].timestamp,
      last_seen: latest.timestamp,
      sparkline,
      latest_request_id: latest.request_id,
    };
  }

  /** The issues, the latest first; 5xx and 4xx apart. */
  async issues(filter: EventFilter, q?: string) {
    const { groups, from, to } = await this.groups(filter, q);
    const issues = groups
      .map((g) => this.summarise(g, from, to))
      .sort((a, b) => b.last_seen.localeCompare(a.last_seen) || b.count - a.count);
    return {
      spark_from: new Date(from).toISOString(),
      spark_to: new Date(to).toISOString(),
      server: issues.filter((i) => i.kind === '5xx'),
      client: issues.filter((i) => i.kind === '4xx'),
    };
  }

  /** One issue: its summary, the latest occurrence's frames, and its occurrences (the latest 200), each linked to its journey. */
  async issue(id: string, filter: EventFilter) {
    const { groups, from, to } = await this.groups(filter);
    const group = groups.find((g) => g.id === id);
    if (!group) return undefined;
    const latest = group.occurrences[0];
    return {
      ...this.summarise(group, from, to),
      fingerprint: fingerprint(latest).parts,
      spark_from: new Date(from).toISOString(),
      spark_to: new Date(to).toISOString(),
      frames: latest.frames,
      traceback: latest.traceback,
      occurrences: group.occurrences.slice(0, 200).map((o) => withoutFields(o, ['frames', 'traceback', 'ts_ms'])),
    };
  }
}

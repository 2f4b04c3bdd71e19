import { BadRequestException } from '@nestjs/common';
import type { EventFilter, JourneyKey } from './explorer-queries.js';

const SINCE_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const one = (value: unknown): string | undefined => {
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' && first.trim() !== '' ? first.trim().slice(0, 500) : undefined;
};

/** Times a filter may name: 1970-01-01 to 9999-12-31 (epoch ms); outside, the answer is 400, not a failed query. */
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** The longest `since`: 100 years. */
export const MAX_SINCE_MS = 36_500 * 86_400_000;

function time(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : new Date(value).getTime();
  if (!Number.isFinite(ms)) throw new BadRequestException(`${name} must be an ISO time or epoch milliseconds.`);
  if (ms < 0 || ms > MAX_TIME_MS) throw new BadRequestException(`${name} must be between 1970-01-01 and 9999-12-31.`);
  return ms;
}

/**
 * The query string's filters: `user` (or `distinct_id`), `endpoint`, `status`
 * (`503` or `5xx`), `error_type`, and a time range as `since` (`15m`, `1h`,
 * `7d`) or `from`/`to` (ISO time or epoch ms).
 */
export function parseFilter(query: Record<string, unknown>, now = Date.now()): EventFilter {
  const since = one(query.since);
  let from = time('from', one(query.from));
  if (since !== undefined && since !== 'all') {
    const match = /^(\d+)([smhd])$/.exec(since);
    if (!match) throw new BadRequestException('since must look like 30s, 15m, 1h, 7d or all.');
    const span = Number(match[1]) * SINCE_UNITS[match[2]];
    if (!(span <= MAX_SINCE_MS)) throw new BadRequestException('since must be at most 100 years (36500d).');
    from = Math.max(0, now - span);
  }
  const to = time('to', one(query.to));
  if (from !== undefined && to !== undefined && from > to) throw new BadRequestException('from must not be after to.');
  const status = one(query.status);
  if (status !== undefined && !/^([1-5]xx|\d{3})$/i.test(status))
    throw new BadRequestException('status must be a code (503) or a class (5xx).');
  return {
    user: one(query.user) ?? one(query.distinct_id),
    endpoint: one(query.endpoint),
    status,
    errorType: one(query.error_type),
    from,
    to,
  };
}

/** Exactly one of `request_id`, `distinct_id` (or `user`), `session_id`. */
export function parseJourneyKey(query: Record<string, unknown>): JourneyKey {
  const requestId = one(query.request_id);
  const distinctId = one(query.distinct_id) ?? one(query.user);
  const sessionId = one(query.session_id);
  const given = [requestId, distinctId, sessionId].filter((v) => v !== undefined).length;
  if (given === 1) {
    if (requestId !== undefined) return { request_id: requestId };
    if (sessionId !== undefined) return { session_id: sessionId };
    if (distinctId !== undefined) return { distinct_id: distinctId };
  }
  throw new BadRequestException('Give exactly one of request_id, distinct_id or session_id.');
}

export function parseLimit(value: unknown): number | undefined {
  const text = one(value);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new BadRequestException('limit must be a positive integer.');
  return n;
}

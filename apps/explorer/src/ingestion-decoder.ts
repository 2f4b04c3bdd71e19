import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';

/** One event as the explorer stores it, whichever client sent it. */
export interface IngestedEvent {
  uuid: string;
  event: string;
  distinct_id: string;
  /** Epoch milliseconds. */
  timestampMs: number;
  properties: Record<string, unknown>;
}

export interface DecodedBody {
  events: IngestedEvent[];
  /** Items that were not events (no name, no distinct_id, not an object), or larger than 1 MiB. */
  rejected: number;
}

/** What the request looked like on the wire. */
export interface RawIngestion {
  /** The body, already inflated when it came with `Content-Encoding: gzip` (posthog-node). */
  body: Buffer;
  contentType?: string;
  /** posthog-js names its compression in the query string: `compression=gzip-js` or `base64`. */
  query: Record<string, unknown>;
  maxBytes: number;
  /** When the body arrived, for events that carry no timestamp. */
  receivedAt: number;
}

/** A body the explorer cannot read: answered 400 (or 413 when `tooLarge`). */
export class IngestionError extends Error {
  constructor(
    message: string,
    readonly tooLarge = false,
  ) {
    super(message);
  }
}

const MAX_NAME = 200;
/** PostHog's own limit on one event: larger ones are dropped (counted as rejected). */
export const MAX_EVENT_BYTES = 1024 * 1024;
const MAX_ID = 200;
const GZIP_MAGIC = [0x1f, 0x8b];

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown, max: number): string | undefined =>
  typeof value === 'string' && value !== '' && value.length <= max ? value : typeof value === 'number' ? String(value) : undefined;

function gunzip(body: Buffer, maxBytes: number): Buffer {
  try {
    return gunzipSync(body, { maxOutputLength: maxBytes });
  } catch (error) {
    if (error instanceof RangeError || (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new IngestionError(`The body inflates to more than ${maxBytes} bytes.`, true);
    }
    throw new IngestionError('The body says gzip but is not valid gzip.');
  }
}

function fromBase64(data: string): string {
  // posthog-js sends standard base64; tolerate the URL-safe alphabet and lost padding.
  return Buffer.from(data.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
}

/**
 * The JSON text of a capture request, whichever way it was packed:
 * plain JSON, gzip (posthog-node's Content-Encoding, or posthog-js's
 * `compression=gzip-js`), base64, or a form with a `data` field (posthog-js's
 * `compression=base64`, and its GET fallback `?data=`).
 */
function bodyText(raw: RawIngestion): string {
  let compression = typeof raw.query.compression === 'string' ? raw.query.compression : undefined;
  let body = raw.body;
  // As PostHog's capture does: gzip is recognised by its magic bytes, whatever the query says
  // (posthog-js can name gzip-js and still send a form, when it fell back).
  if (body[0] === GZIP_MAGIC[0] && body[1] === GZIP_MAGIC[1]) {
    body = gunzip(body, raw.maxBytes);
    compression = undefined;
  } else if (compression === 'gzip-js' || compression === 'gzip') {
    compression = undefined;
  }
  let content = body.toString('utf8');
  if (content === '' && typeof raw.query.data === 'string') content = `data=${encodeURIComponent(raw.query.data)}`;
  if (/^\s*[[{]/.test(content)) return content;
  // Not JSON yet: a form (`data=...`), or base64 text.
  if (/x-www-form-urlencoded/i.test(raw.contentType ?? '') || /^(data|compression)=/.test(content)) {
    const form = new URLSearchParams(content);
    compression = form.get('compression') ?? compression;
    content = form.get('data') ?? '';
  }
  if (compression === 'lz64') throw new IngestionError('lz64 compression is not supported; send gzip-js, base64 or plain JSON.');
  const trimmed = content.trim();
  if (compression === 'base64' || (trimmed !== '' && trimmed[0] !== '{' && trimmed[0] !== '[')) content = fromBase64(trimmed);
  return content;
}

function eventTime(event: Record<string, unknown>, properties: Record<string, unknown>, receivedAt: number, sentAt?: number): number {
  // posthog-js's older batches give an `offset` (ms before it sent them) instead of a timestamp.
  const offset =
    typeof event.offset === 'number' && Number.isFinite(event.offset) && event.timestamp === undefined
      ? (sentAt ?? receivedAt) - event.offset
      : undefined;
  const candidates = [event.timestamp, offset, typeof properties.$time === 'number' ? properties.$time * 1000 : undefined];
  for (const candidate of candidates) {
    if (typeof candidate !== 'string' && typeof candidate !== 'number') continue;
    const ms = new Date(candidate).getTime();
    if (Number.isFinite(ms)) return ms;
  }
  return receivedAt;
}

/** Events without a uuid get one derived from their content, so a retry of the same event is still stored once. */
function contentUuid(parts: unknown[]): string {
  const hex = createHash('sha256').update(JSON.stringify(parts)).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** A distinct id as PostHog's capture reads it: a string or a number, cut to its first 200 characters. */
function distinctIdOf(value: unknown): string | undefined {
  const id = typeof value === 'string' ? value : typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined;
  return id === undefined || id.trim() === '' ? undefined : [...id].slice(0, MAX_ID).join('');
}

function normalise(item: unknown, receivedAt: number, sentAt?: number): IngestedEvent | undefined {
  if (!isObject(item)) return undefined;
  const name = text(item.event, MAX_NAME);
  const properties = isObject(item.properties) ? { ...item.properties } : {};
  const distinctId = distinctIdOf(item.distinct_id) ?? distinctIdOf(properties.distinct_id) ?? distinctIdOf(item.$distinct_id);
  if (name === undefined || distinctId === undefined) return undefined;
  // posthog-js puts person updates beside the properties; PostHog reads them from either place.
  for (const key of ['$set', '$set_once'] as const) if (isObject(item[key]) && !(key in properties)) properties[key] = item[key];
  if (Buffer.byteLength(JSON.stringify(properties)) > MAX_EVENT_BYTES) return undefined;
  const timestampMs = eventTime(item, properties, receivedAt, sentAt);
  const uuid = text(item.uuid, 100) ?? contentUuid([name, distinctId, item.timestamp ?? null, properties]);
  return { uuid, event: name, distinct_id: distinctId, timestampMs, properties };
}

/**
 * Decodes a capture request of posthog-node (`/batch/`: `{ api_key, batch }`)
 * or posthog-js (`/e/`, `/i/v0/e/`: an array of events, or one event).
 */
export function decodeIngestion(raw: RawIngestion): DecodedBody {
  if (raw.body.length > raw.maxBytes) throw new IngestionError(`The body is larger than ${raw.maxBytes} bytes.`, true);
  const content = bodyText(raw);
  if (Buffer.byteLength(content) > raw.maxBytes) throw new IngestionError(`The body is larger than ${raw.maxBytes} bytes.`, true);
  let payload: unknown;
  try {
    payload = JSON.parse(content);
  } catch {
    const named = raw.query.compression;
    if ((named === 'gzip-js' || named === 'gzip') && !(raw.body[0] === GZIP_MAGIC[0] && raw.body[1] === GZIP_MAGIC[1])) {
      throw new IngestionError(`The body is not gzip (compression=${named} was named), nor JSON, a form or base64.`);
    }
    throw new IngestionError('The body is not JSON (after decompression).');
  }
  const items = Array.isArray(payload)
    ? payload
    : isObject(payload) && Array.isArray(payload.batch)
      ? payload.batch
      : isObject(payload) && 'event' in payload
        ? [payload]
        : undefined;
  if (!items) throw new IngestionError('Expected an event, an array of events, or { "batch": [...] }.');
  // When the client sent the batch: posthog-js's `_` (epoch ms) or a batch's `sent_at`.
  const sentAtRaw =
    isObject(payload) && typeof payload.sent_at === 'string'
      ? Date.parse(payload.sent_at)
      : Number(typeof raw.query._ === 'string' ? raw.query._ : NaN);
  const sentAt = Number.isFinite(sentAtRaw) && sentAtRaw > 0 ? sentAtRaw : undefined;
  const events: IngestedEvent[] = [];
  for (const item of items) {
    const event = normalise(item, raw.receivedAt, sentAt);
    if (event) events.push(event);
  }
  return { events, rejected: items.length - events.length };
}

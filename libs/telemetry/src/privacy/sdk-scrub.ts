import { MAX_STRING_LENGTH, truncate } from './bounded.js';
import { isSensitiveKey, REDACTED } from './redact.js';

/**
 * What the SDKs (`@sentry/node`, posthog-node) attach on their own, or take from
 * the app as they find it (console arguments, thrown objects, `capture()`
 * properties), made safe to send: a redacted, bounded copy. The app's values are
 * never changed; only the copies the SDKs send are.
 */

/** Deepest nesting kept. */
const MAX_DEPTH = 5;
/** Most keys or items kept per object or array. */
const MAX_ITEMS = 100;
/** Most values visited in one tree: shared references cannot multiply the work. */
const MAX_NODES = 1000;
/** Most string characters kept in one tree. */
const MAX_TOTAL_CHARS = 32_768;
/** Longest key kept. */
const MAX_KEY_LENGTH = 200;

interface Walk {
  redact: (text: string) => string;
  nodes: number;
  chars: number;
  seen: WeakSet<object>;
}

/** A short note for bytes, never the bytes: `[Buffer 123 bytes]`, `[Uint8Array 16 bytes]`. */
export function bytesMarker(bytes: ArrayBufferView | ArrayBuffer): string {
  let kind = 'bytes';
  try {
    kind = Buffer.isBuffer(bytes) ? 'Buffer' : (Object.getPrototypeOf(bytes)?.constructor?.name ?? 'bytes');
  } catch {
    // a hostile prototype: the generic name
  }
  return `[${typeof kind === 'string' ? kind.slice(0, 40) : 'bytes'} ${bytes.byteLength} bytes]`;
}

function scrubString(text: string, walk: Walk): string {
  // Cut before redaction reads it: the cost stays linear in what is kept.
  const cut = text.length > MAX_STRING_LENGTH * 2 ? text.slice(0, MAX_STRING_LENGTH * 2) : text;
  const kept = truncate(walk.redact(cut), Math.max(0, Math.min(MAX_STRING_LENGTH, walk.chars)));
  walk.chars -= kept.length;
  return kept;
}

function scrub(value: unknown, depth: number, walk: Walk): unknown {
  if (--walk.nodes < 0) return undefined;
  switch (typeof value) {
    case 'string':
      return scrubString(value, walk);
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
    case 'undefined':
      return value;
    case 'bigint':
      return scrubString(`${value}n`, walk);
    case 'symbol':
      return scrubString(value.toString(), walk);
    case 'function':
      return '[Function]';
  }
  if (value === null) return null;
  const obj = value as object;
  if (walk.seen.has(obj)) return '[Circular]';
  try {
    if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return bytesMarker(obj);
    if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? null : obj.toISOString();
    if (obj instanceof Error) return scrubString(`${obj.name}: ${obj.message}`, walk);
    if (depth >= MAX_DEPTH) return '[Too deep]';
    walk.seen.add(obj);
    try {
      if (Array.isArray(obj)) {
        const out = obj.slice(0, MAX_ITEMS).map((item) => scrub(item, depth + 1, walk) ?? null);
        if (obj.length > MAX_ITEMS) out.push(`[${obj.length - MAX_ITEMS} more items]`);
        return out;
      }
      return scrubEntries(obj, depth, walk);
    } finally {
      walk.seen.delete(obj);
    }
  } catch {
    return '[unserialisable]';
  }
}

function scrubEntries(obj: object, depth: number, walk: Walk, keep?: (key: string) => boolean): Record<string, unknown> {
  // No prototype: an own "__proto__" key stays data.
  const out: Record<string, unknown> = Object.create(null);
  let count = 0;
  for (const key of Object.keys(obj)) {
    if (count++ >= MAX_ITEMS) {
      out['…'] = '[more keys truncated]';
      break;
    }
    let item: unknown;
    try {
      item = (obj as Record<string, unknown>)[key];
    } catch {
      item = '[unreadable]';
    }
    if (keep?.(key)) {
      out[key] = item;
      continue;
    }
    const kept = isSensitiveKey(key) ? REDACTED : scrub(item, depth + 1, walk);
    if (kept === undefined) continue;
    const name = truncate(walk.redact(key.length > MAX_KEY_LENGTH * 2 ? key.slice(0, MAX_KEY_LENGTH * 2) : key), MAX_KEY_LENGTH);
    walk.chars -= name.length;
    out[name] = kept;
  }
  return out;
}

const newWalk = (redact: (text: string) => string): Walk => ({ redact, nodes: MAX_NODES, chars: MAX_TOTAL_CHARS, seen: new WeakSet() });

/**
 * A redacted, bounded, JSON-safe copy of `value`: strings redacted and cut,
 * values of sensitive keys (`password`, `token`, …) and key names redacted,
 * bytes (Buffer, typed arrays) as a short marker, deep or wide structures and
 * the whole tree capped (values visited, characters kept), so the cost is
 * linear in what is kept. Never throws, never changes `value`.
 */
export function scrubbedValue(value: unknown, redact: (text: string) => string): unknown {
  try {
    return scrub(value, 0, newWalk(redact));
  } catch {
    return '[unserialisable]';
  }
}

/**
 * As `scrubbedValue` for an object of properties (one level more: the
 * properties themselves are not a nesting level), keeping the keys `keep`
 * accepts as they are (what was scrubbed by other means).
 */
export function scrubbedProperties(
  properties: object,
  redact: (text: string) => string,
  keep?: (key: string) => boolean,
): Record<string, unknown> {
  try {
    return scrubEntries(properties, -1, newWalk(redact), keep);
  } catch {
    return {};
  }
}

/** A URL without its query string and fragment (which may hold tokens). */
export function withoutQuery(url: string): string {
  const cut = url.search(/[?#]/);
  return cut < 0 ? url : url.slice(0, cut);
}

/** A stack frame as Sentry and posthog-node send it: the parts that can carry a secret. */
export interface SdkFrame {
  filename?: unknown;
  module?: unknown;
  abs_path?: unknown;
  context_line?: unknown;
  pre_context?: unknown;
  post_context?: unknown;
  vars?: unknown;
}

/** Longest source line kept around a frame. */
const MAX_SOURCE_LINE = 500;
/** Most source lines kept before or after a frame's line. */
const MAX_SOURCE_LINES = 10;

/**
 * Scrubs one frame in place (the SDK built it for this event): paths and
 * module names redacted (a token in a directory name), the source lines around
 * it redacted and capped (they are the app's code, kept for reading the error;
 * a secret written in the code is redacted like any text), local variables
 * dropped (they hold request data, not code).
 */
export function scrubFrame(frame: SdkFrame, redact: (text: string) => string): void {
  if (typeof frame !== 'object' || frame === null) return;
  const line = (text: unknown) =>
    typeof text === 'string'
      ? truncate(redact(text.length > MAX_SOURCE_LINE * 2 ? text.slice(0, MAX_SOURCE_LINE * 2) : text), MAX_SOURCE_LINE)
      : undefined;
  const lines = (list: unknown) => (Array.isArray(list) ? list.slice(-MAX_SOURCE_LINES).map((text) => line(text) ?? '') : undefined);
  for (const key of ['filename', 'module', 'abs_path', 'context_line'] as const) {
    if (frame[key] === undefined) continue;
    const clean = line(frame[key]);
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- `key` is one of the four fields above; the SDK's frame is scrubbed in place
    if (clean === undefined) delete frame[key];
    else frame[key] = clean;
  }
  if (frame.pre_context !== undefined) frame.pre_context = lines(frame.pre_context);
  if (frame.post_context !== undefined)
    frame.post_context = Array.isArray(frame.post_context) ? lines(frame.post_context.slice(0, MAX_SOURCE_LINES)) : undefined;
  delete frame.vars;
}

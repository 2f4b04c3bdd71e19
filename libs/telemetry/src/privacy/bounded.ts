import { isSensitiveKey, REDACTED } from './redact.js';

/** Longest string sent for an ordinary property (messages, custom values). */
export const MAX_STRING_LENGTH = 2000;
/** Deepest nesting kept in custom properties. */
const MAX_DEPTH = 5;
/** Most keys or items kept per object or array in custom properties. */
const MAX_ITEMS = 100;

/** Most values visited in one custom property tree: shared references cannot multiply the work. */
const MAX_NODES = 1000;
/** Most string characters kept in one custom property tree. */
const MAX_TOTAL_CHARS = 32_768;

/** Cuts `text` to at most `max` characters, saying how many were cut when there is room to. */
export function truncate(text: string, max: number = MAX_STRING_LENGTH): string {
  if (text.length <= max) return text;
  const noteFor = (keep: number) => `… [truncated ${text.length - keep} chars]`;
  let keep = max - noteFor(max).length;
  keep = max - noteFor(keep).length; // the count may have gained a digit
  if (keep <= 0) return text.slice(0, max);
  return text.slice(0, keep) + noteFor(keep);
}

/** A readable string for any thrown or passed value, never throwing itself. */
export function safeString(value: unknown, max: number = MAX_STRING_LENGTH): string {
  try {
    if (typeof value === 'string') return truncate(value, max);
    if (value === null) return 'null';
    if (value === undefined) return 'undefined';
    if (typeof value === 'symbol') return truncate(value.toString(), max);
    if (typeof value === 'bigint') return truncate(value.toString() + 'n', max);
    if (typeof value === 'object') {
      const json = safeJson(value, max);
      if (json !== undefined) return json;
    }
    return truncate(String(value), max);
  } catch {
    return '[unprintable value]';
  }
}

function safeJson(value: object, max: number): string | undefined {
  try {
    const json = JSON.stringify(toBoundedJson(value));
    return json === undefined ? undefined : truncate(json, max);
  } catch {
    return undefined;
  }
}

interface Budget {
  nodes: number;
  chars: number;
  redact?: (text: string) => string;
}

/**
 * A JSON-safe, bounded copy of a custom property value: long strings cut,
 * deep or wide structures trimmed, circular references, BigInt, symbols,
 * functions and throwing getters turned into plain strings, and a budget on
 * the whole tree (values visited, characters kept). Values of sensitive keys
 * (`password`, `token`, `authorization`, …) become `[REDACTED]`, and strings
 * pass through `redact` when given. Never throws.
 */
export function toBoundedJson(value: unknown, redact?: (text: string) => string): unknown {
  return bounded(value, 0, new WeakSet(), { nodes: MAX_NODES, chars: MAX_TOTAL_CHARS, redact });
}

/** A string cut to the per-string limit and to what the tree's budget has left, counted as serialised JSON. */
function boundedString(text: string, budget: Budget): string {
  const cut = text.length > MAX_STRING_LENGTH * 2 ? text.slice(0, MAX_STRING_LENGTH * 2) : text;
  const clean = budget.redact ? budget.redact(cut) : cut;
  let kept = truncate(clean, Math.max(0, Math.min(MAX_STRING_LENGTH, budget.chars)));
  let cost = JSON.stringify(kept).length - 2; // escapes (control characters: 6 each) count as sent
  if (cost > budget.chars) {
    kept = truncate(clean, Math.floor(Math.max(0, budget.chars) / 6));
    cost = JSON.stringify(kept).length - 2;
  }
  budget.chars -= cost;
  return kept;
}

/** The UTF-8 text of bytes (at most twice the string limit), or a note of their size when they are no text. */
function bytesAsText(bytes: ArrayBufferView | ArrayBuffer): string {
  const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const head = view.subarray(0, MAX_STRING_LENGTH * 2);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: true });
  } catch {
    return `[${view.byteLength} bytes]`;
  }
}

function bounded(value: unknown, depth: number, seen: WeakSet<object>, budget: Budget): unknown {
  if (--budget.nodes < 0) return undefined;
  switch (typeof value) {
    case 'string':
      return boundedString(value, budget);
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value;
    case 'bigint':
      return boundedString(value.toString(), budget);
    case 'undefined':
      return undefined;
    case 'symbol':
      return value.toString();
    case 'function':
      return undefined;
  }
  if (value === null) return null;
  const obj = value as object;
  if (seen.has(obj)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Too deep]';
  try {
    if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? null : obj.toISOString();
    if (obj instanceof Error) return boundedString(safeString(`${obj.name}: ${obj.message}`), budget);
    // Bytes (Buffer, typed arrays): their text, redacted like any string, not their bytes one by one as numbers.
    if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) return boundedString(bytesAsText(obj), budget);
    seen.add(obj);
    if (Array.isArray(obj)) {
      const out = obj.slice(0, MAX_ITEMS).map((item) => bounded(item, depth + 1, seen, budget) ?? null);
      if (obj.length > MAX_ITEMS) out.push(`[${obj.length - MAX_ITEMS} more items]`);
      return out;
    }
    // No prototype: an own "__proto__" key (from JSON.parse) stays data.
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
      const kept = isSensitiveKey(key) ? REDACTED : bounded(item, depth + 1, seen, budget);
      if (kept !== undefined) out[boundedString(key, { nodes: 0, chars: Math.min(200, budget.chars), redact: budget.redact })] = kept;
      budget.chars -= Math.min(key.length, 200);
    }
    return out;
  } catch {
    return '[unserialisable]';
  } finally {
    seen.delete(obj);
  }
}

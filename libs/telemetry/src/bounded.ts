/** Longest string sent for an ordinary property (messages, custom values). */
export const MAX_STRING_LENGTH = 2000;
/** Deepest nesting kept in custom properties. */
const MAX_DEPTH = 5;
/** Most keys or items kept per object or array in custom properties. */
const MAX_ITEMS = 100;

/** Cuts `text` to `max` characters, saying how much was cut. */
export function truncate(text: string, max: number = MAX_STRING_LENGTH): string {
  if (text.length <= max) return text;
  const note = `… [truncated ${text.length - max} chars]`;
  return text.slice(0, Math.max(0, max - note.length)) + note;
}

/** A readable string for any thrown or passed value, never throwing itself. */
export function safeString(value: unknown, max: number = MAX_STRING_LENGTH): string {
  try {
    if (typeof value === 'string') return truncate(value, max);
    if (value === null) return 'null';
    if (value === undefined) return 'undefined';
    if (typeof value === 'symbol') return truncate(value.toString(), max);
    if (typeof value === 'bigint') return value.toString() + 'n';
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
    const json = JSON.stringify(toBoundedJson(value, 0, new WeakSet()));
    return json === undefined ? undefined : truncate(json, max);
  } catch {
    return undefined;
  }
}

/**
 * A JSON-safe, bounded copy of a custom property value: long strings cut,
 * deep or wide structures trimmed, circular references, BigInt, symbols,
 * functions and throwing getters turned into plain strings. Never throws.
 */
export function toBoundedJson(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  switch (typeof value) {
    case 'string':
      return truncate(value);
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
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
    if (obj instanceof Error) return safeString(`${obj.name}: ${obj.message}`);
    seen.add(obj);
    if (Array.isArray(obj)) {
      const out = obj.slice(0, MAX_ITEMS).map((item) => toBoundedJson(item, depth + 1, seen));
      if (obj.length > MAX_ITEMS) out.push(`[${obj.length - MAX_ITEMS} more items]`);
      return out;
    }
    const out: Record<string, unknown> = {};
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
      const bounded = toBoundedJson(item, depth + 1, seen);
      if (bounded !== undefined) out[truncate(key, 200)] = bounded;
    }
    return out;
  } catch {
    return '[unserialisable]';
  } finally {
    seen.delete(obj);
  }
}

/** Longest frontend session or distinct id kept; longer ones are ignored. */
const MAX_TRACING_ID = 200;
/** Control characters, and the comma Node joins a repeated header with: such a value names nobody. */
// eslint-disable-next-line no-control-regex -- control characters are what it refuses
const UNUSABLE_CHARS = /[\x00-\x1f\x7f-\x9f,]/;
/** Values PostHog itself refuses as distinct ids. */
const ILLEGAL_IDS = new Set([
  'undefined',
  'null',
  'anonymous',
  'guest',
  'distinct_id',
  'distinctid',
  'id',
  'not_authenticated',
  'email',
  'true',
  'false',
  '0',
  'nan',
  'none',
  '[object object]',
]);

/**
 * A usable frontend session or distinct id (posthog-js's `tracing_headers`, or
 * the same ids carried by a WebSocket handshake or a microservice message),
 * trimmed; `undefined` for anything else (not a string, empty, too long,
 * control characters, a value PostHog refuses).
 */
export function tracingId(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const trimmed = value.trim();
  if (trimmed === '' || trimmed.length > MAX_TRACING_ID || UNUSABLE_CHARS.test(trimmed)) return undefined;
  if (ILLEGAL_IDS.has(trimmed.toLowerCase())) return undefined;
  return trimmed;
}

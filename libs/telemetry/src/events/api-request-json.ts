import { randomUuid } from '../request/random-ids.js';
import { isoSecond, MILLIS_THEN_UUID, type ApiRequestFields, type EventIdentity } from './telemetry-events.js';

/** Printable ASCII but `"` and `\`: JSON writes it as it is, between quotes. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** `PLAIN.test(text)` for short texts (ids, names) by a loop, cheaper than a call into the regexp engine. */
function isPlain(text: string): boolean {
  if (text.length > 64) return PLAIN.test(text);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** `JSON.stringify(text)`; plain text (ids, names) without the stringifier's pass over each character. */
function quote(text: string): string {
  return isPlain(text) ? '"' + text + '"' : JSON.stringify(text);
}

/** `JSON.stringify(n)` of a number: its text, or `null` for what JSON cannot hold. */
function number(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/**
 * Pieces of JSON an app repeats on every request, kept once each: by endpoint, then method, the JSON that
 * opens the properties (`{"endpoint":…,"method":…,"status_code":`); by environment, `,"environment":…`.
 * Looked up by the app's own strings, whose hashes V8 keeps (no key is built per request).
 */
const routePieces = new Map<string, Map<string, string>>();
const environmentPieces = new Map<string, string>();
/** Most pieces kept (a bound should an app's endpoints be unbounded): past it, they are made again. */
const MAX_PIECES = 1000;
let routePieceCount = 0;

function routePiece(endpoint: string, method: string): string {
  let byMethod = routePieces.get(endpoint);
  let json = byMethod?.get(method);
  if (json !== undefined) return json;
  if (routePieceCount >= MAX_PIECES) {
    routePieces.clear();
    routePieceCount = 0;
    byMethod = undefined;
  }
  if (byMethod === undefined) routePieces.set(endpoint, (byMethod = new Map()));
  json = '{"endpoint":' + quote(endpoint) + ',"method":' + quote(method) + ',"status_code":';
  byMethod.set(method, json);
  routePieceCount++;
  return json;
}

function environmentPiece(environment: string): string {
  let json = environmentPieces.get(environment);
  if (json === undefined) {
    if (environmentPieces.size >= MAX_PIECES) environmentPieces.clear();
    environmentPieces.set(environment, (json = ',"environment":' + quote(environment)));
  }
  return json;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/**
 * The JSON of `apiRequestEvent(identity, f)` with a new uuid and timestamp,
 * written directly: the same text `JSON.stringify` gives of that event (keys
 * in the same order), without building the event first. The one event every
 * request sends, so it is the one worth writing by hand, in as few joins as
 * it takes (each is a piece for V8 to join and then copy): the request, trace
 * and span ids, the uuid and the timestamp are checked or made by the module
 * and need no escaping; the route and the environment repeat, their JSON is
 * kept. Used where no `beforeSend` needs the event as an object.
 */
export function apiRequestJson(identity: EventIdentity, f: ApiRequestFields): string {
  const success = f.success ?? (f.statusCode >= 200 && f.statusCode < 300);
  let json =
    '{"event":"api_request","distinct_id":' +
    quote(identity.distinctId) +
    ',"properties":' +
    routePiece(f.endpoint, f.method) +
    number(f.statusCode) +
    ',"response_time_ms":' +
    number(round(f.durationMs)) +
    (success ? ',"success":true,"user_id":' : ',"success":false,"user_id":') +
    quote(identity.userId) +
    environmentPiece(identity.environment);
  // A request id is checked where the operation starts (letters, digits, `-_.:`), trace and span ids are hex:
  // nothing in them to escape.
  if (identity.requestId !== undefined) json += ',"request_id":"' + identity.requestId + '"';
  if (identity.sessionId !== undefined) json += ',"$session_id":' + quote(identity.sessionId);
  if (identity.traceId !== undefined) json += ',"trace_id":"' + identity.traceId + '"';
  if (identity.spanId !== undefined) json += ',"span_id":"' + identity.spanId + '"';
  if (identity.parentSpanId !== undefined) json += ',"parent_span_id":"' + identity.parentSpanId + '"';
  if (identity.personless) json += ',"$process_person_profile":false';
  if (identity.internalUser) json += ',"is_internal_user":true';
  const now = Date.now();
  return json + '},"timestamp":"' + isoSecond(now) + MILLIS_THEN_UUID[now % 1000] + randomUuid() + '"}';
}

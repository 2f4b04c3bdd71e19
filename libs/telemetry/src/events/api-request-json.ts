import { randomUuid } from '../request/random-ids.js';
import { isoSecond, MILLIS_THEN_UUID, type ApiRequestFields, type EventIdentity } from './telemetry-events.js';

/** Printable ASCII but `"` and `\`: JSON writes it as it is, between quotes. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * `PLAIN.test(text)`; short texts (a method, `anonymous`) by a loop, cheaper than a call into the regexp
 * engine. Longer ones (ids) by the expression: ids cut from a pool are slices, whose characters a loop
 * reads one call at a time.
 */
function isPlain(text: string): boolean {
  if (text.length > 12) return PLAIN.test(text);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** UTF-8 bytes beyond one per character in what `quote` wrote since the JSON being written began. */
let wideBytes = 0;

/** `JSON.stringify(text)`; plain text (ids, names) without the stringifier's pass over each character. */
function quote(text: string): string {
  if (isPlain(text)) return '"' + text + '"';
  const json = JSON.stringify(text);
  wideBytes += Buffer.byteLength(json) - json.length;
  return json;
}

/** `JSON.stringify(n)` of a number: its text, or `null` for what JSON cannot hold. */
function number(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/**
 * `JSON.stringify(Math.round(ms * 100) / 100)`: the same text, written from whole hundredths for the
 * durations requests have (formatting a fraction is several times dearer than two whole numbers).
 */
function hundredths(ms: number): string {
  const n = Math.round(ms * 100);
  if (!(n >= 0 && n < 2 ** 31)) return number(n / 100);
  const whole = (n / 100) | 0;
  const cents = n - whole * 100;
  if (cents === 0) return String(whole);
  if (cents % 10 === 0) return whole + '.' + cents / 10;
  return whole + (cents < 10 ? '.0' : '.') + cents;
}

/**
 * Pieces of JSON an app repeats on every request, kept once each: by endpoint, then method, the JSON that
 * opens the properties (`{"endpoint":…,"method":…,"status_code":`); by environment, `,"environment":…`.
 * Looked up by the app's own strings, whose hashes V8 keeps (no key is built per request).
 */
const routePieces = new Map<string, Map<string, string>>();
const environmentPieces = new Map<string, string>();
/** The UTF-8 bytes beyond one per character of the kept pieces that have any (a route or environment not in ASCII). */
const wideRoutePieces = new Map<string, number>();
const wideEnvironmentPieces = new Map<string, number>();
/** Most pieces kept (a bound should an app's endpoints be unbounded): past it, they are made again. */
const MAX_PIECES = 1000;
let routePieceCount = 0;

function routePiece(endpoint: string, method: string): string {
  let byMethod = routePieces.get(endpoint);
  let json = byMethod?.get(method);
  if (json !== undefined) return json;
  if (routePieceCount >= MAX_PIECES) {
    routePieces.clear();
    wideRoutePieces.clear();
    routePieceCount = 0;
    byMethod = undefined;
  }
  if (byMethod === undefined) routePieces.set(endpoint, (byMethod = new Map()));
  json = keep(wideRoutePieces, '{"endpoint":' + quote(endpoint) + ',"method":' + quote(method) + ',"status_code":');
  byMethod.set(method, json);
  routePieceCount++;
  return json;
}

function environmentPiece(environment: string): string {
  let json = environmentPieces.get(environment);
  if (json === undefined) {
    if (environmentPieces.size >= MAX_PIECES) {
      environmentPieces.clear();
      wideEnvironmentPieces.clear();
    }
    environmentPieces.set(environment, (json = keep(wideEnvironmentPieces, ',"environment":' + quote(environment))));
  }
  return json;
}

/** A piece about to be kept: its extra UTF-8 bytes, if any, are noted once in `wide` (read by `wideBytesOf`). */
function keep(wide: Map<string, number>, piece: string): string {
  const extra = Buffer.byteLength(piece) - piece.length;
  if (extra > 0) wide.set(piece, extra);
  return piece;
}

/** The extra UTF-8 bytes of a kept piece: nothing to look up while every piece is ASCII. */
function wideBytesOf(wide: Map<string, number>, piece: string): number {
  return wide.size === 0 ? 0 : (wide.get(piece) ?? 0);
}

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
  const route = routePiece(f.endpoint, f.method);
  const environment = environmentPiece(identity.environment);
  // Counted from here: the kept pieces' own extra bytes are added once, below.
  wideBytes = 0;
  let json =
    '{"event":"api_request","distinct_id":' +
    (identity.madeDistinctId === true ? '"' + identity.distinctId + '"' : quote(identity.distinctId)) +
    ',"properties":' +
    route +
    number(f.statusCode) +
    ',"response_time_ms":' +
    hundredths(f.durationMs) +
    (success ? ',"success":true,"user_id":' : ',"success":false,"user_id":') +
    quote(identity.userId) +
    environment;
  // A request id is checked where the operation starts (letters, digits, `-_.:`), trace and span ids are hex:
  // nothing in them to escape.
  if (identity.requestId !== undefined) json += ',"request_id":"' + identity.requestId + '"';
  if (identity.sessionId !== undefined) json += ',"$session_id":' + quote(identity.sessionId);
  if (identity.traceId !== undefined) json += ',"trace_id":"' + identity.traceId + '"';
  if (identity.spanId !== undefined) json += ',"span_id":"' + identity.spanId + '"';
  if (identity.parentSpanId !== undefined) json += ',"parent_span_id":"' + identity.parentSpanId + '"';
  if (identity.personless) json += ',"$process_person_profile":false';
  if (identity.internalUser) json += ',"is_internal_user":true';
  wideBytes += wideBytesOf(wideRoutePieces, route) + wideBytesOf(wideEnvironmentPieces, environment);
  const now = Date.now();
  return json + '},"timestamp":"' + isoSecond(now) + MILLIS_THEN_UUID[now % 1000] + randomUuid() + '"}';
}

/** Where `api_request`'s JSON goes with its size. */
export interface JsonSink {
  enqueueJson(json: string, utf8Bytes: number): void;
}

/**
 * `apiRequestJson`, handed to `sink` with its size in UTF-8 bytes, known as it was written (ASCII unless a
 * text had to be escaped or a kept piece is not ASCII): counting the bytes of the joined pieces afterwards
 * walked the whole text once more.
 */
export function sendApiRequestJson(sink: JsonSink, identity: EventIdentity, f: ApiRequestFields): void {
  const json = apiRequestJson(identity, f);
  sink.enqueueJson(json, json.length + wideBytes);
}

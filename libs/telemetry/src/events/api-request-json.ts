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

/** UTF-8 bytes beyond one per character in what `escaped` wrote since the JSON being written began. */
let wideBytes = 0;

/** `JSON.stringify(text)` of a text that is not plain (plain ones are written between pieces carrying their quotes). */
function escaped(text: string): string {
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
 * JSON an app repeats on every request, kept once per route and per environment. Each piece starts with what
 * closes the text before it: after a plain id (`"` still to close) or after a quoted one. Fewer, longer pieces
 * per event: each join is a node V8 walks again to flatten the event.
 */
interface Piece {
  /** After a plain text whose closing quote is still to write. */
  afterPlain: string;
  /** After JSON that is complete (an escaped text with its quotes). */
  afterJson: string;
  /** UTF-8 bytes beyond one per character (a route or environment not in ASCII). */
  wide: number;
}

/** By endpoint, then method: `","properties":{"endpoint":…,"method":…,"status_code":` (after the distinct id). */
const routePieces = new Map<string, Map<string, Piece>>();
/** By environment: `","environment":…` (after the user id), and the same followed by `,"request_id":"`. */
const environmentPieces = new Map<string, Piece>();
const environmentThenRequestIdPieces = new Map<string, Piece>();
/** Most pieces kept (a bound should an app's endpoints be unbounded): past it, they are made again. */
const MAX_PIECES = 1000;
let routePieceCount = 0;

function piece(json: string): Piece {
  return { afterPlain: '"' + json, afterJson: json, wide: Buffer.byteLength(json) - json.length };
}

function routePiece(endpoint: string, method: string): Piece {
  let byMethod = routePieces.get(endpoint);
  let kept = byMethod?.get(method);
  if (kept !== undefined) return kept;
  if (routePieceCount >= MAX_PIECES) {
    routePieces.clear();
    routePieceCount = 0;
    byMethod = undefined;
  }
  if (byMethod === undefined) routePieces.set(endpoint, (byMethod = new Map()));
  kept = piece(',"properties":{"endpoint":' + JSON.stringify(endpoint) + ',"method":' + JSON.stringify(method) + ',"status_code":');
  byMethod.set(method, kept);
  routePieceCount++;
  return kept;
}

function environmentPiece(pieces: Map<string, Piece>, environment: string, then: string): Piece {
  let kept = pieces.get(environment);
  if (kept === undefined) {
    if (pieces.size >= MAX_PIECES) pieces.clear();
    pieces.set(environment, (kept = piece(',"environment":' + JSON.stringify(environment) + then)));
  }
  return kept;
}

/**
 * `200,"response_time_ms":` for the statuses HTTP has (0 to 599): the status and what follows it, one piece. Any
 * other number (a fraction, a negative, `NaN`) finds no entry and is written by `number`.
 */
const STATUS_THEN_TIME = Array.from({ length: 600 }, (_, status) => status + ',"response_time_ms":');

/**
 * What closes the properties and opens the timestamp, by `closeQuote | personless << 1 | internalUser << 2`:
 * the last text's closing quote if it is still to write, `$process_person_profile` and `is_internal_user`.
 */
const TAILS = Array.from(
  { length: 8 },
  (_, k) =>
    ((k & 1) !== 0 ? '"' : '') +
    ((k & 2) !== 0 ? ',"$process_person_profile":false' : '') +
    ((k & 4) !== 0 ? ',"is_internal_user":true' : '') +
    '},"timestamp":"',
);

/**
 * The JSON of `apiRequestEvent(identity, f)` with a new uuid and timestamp,
 * written directly: the same text `JSON.stringify` gives of that event (keys
 * in the same order), without building the event first. The one event every
 * request sends, so it is the one worth writing by hand, in as few joins as
 * it takes (each is a node for V8 to walk and copy when the text is
 * flattened): a plain text (an id, a name) is written between the literal
 * pieces around it, which carry its quotes; the request, trace and span ids,
 * the uuid and the timestamp are checked or made by the module and need no
 * escaping; the route and the environment repeat, their JSON is kept. Used
 * where no `beforeSend` needs the event as an object.
 */
export function apiRequestJson(identity: EventIdentity, f: ApiRequestFields): string {
  const success = f.success ?? (f.statusCode >= 200 && f.statusCode < 300);
  const distinctId = identity.distinctId;
  const userId = identity.userId;
  const requestId = identity.requestId;
  const route = routePiece(f.endpoint, f.method);
  const environment =
    requestId !== undefined
      ? environmentPiece(environmentThenRequestIdPieces, identity.environment, ',"request_id":"')
      : environmentPiece(environmentPieces, identity.environment, '');
  // Counted from here: the kept pieces' extra bytes are added below.
  wideBytes = route.wide + environment.wide;
  let json =
    identity.madeDistinctId === true || isPlain(distinctId)
      ? '{"event":"api_request","distinct_id":"' + distinctId + route.afterPlain
      : '{"event":"api_request","distinct_id":' + escaped(distinctId) + route.afterJson;
  const status = f.statusCode;
  json += (STATUS_THEN_TIME[status] ?? number(status) + ',"response_time_ms":') + hundredths(f.durationMs);
  json += isPlain(userId)
    ? (success ? ',"success":true,"user_id":"' : ',"success":false,"user_id":"') + userId + environment.afterPlain
    : (success ? ',"success":true,"user_id":' : ',"success":false,"user_id":') + escaped(userId) + environment.afterJson;
  // A request id is checked where the operation starts (letters, digits, `-_.:`), trace and span ids are hex:
  // nothing in them to escape. `open`: the last text written still needs its closing quote.
  let open = false;
  if (requestId !== undefined) {
    json += requestId;
    open = true;
  }
  const sessionId = identity.sessionId;
  if (sessionId !== undefined) {
    const plain = isPlain(sessionId);
    if (plain) json += (open ? '","$session_id":"' : ',"$session_id":"') + sessionId;
    else json += (open ? '","$session_id":' : ',"$session_id":') + escaped(sessionId);
    open = plain;
  }
  if (identity.traceId !== undefined) {
    json += (open ? '","trace_id":"' : ',"trace_id":"') + identity.traceId;
    open = true;
  }
  if (identity.spanId !== undefined) {
    json += (open ? '","span_id":"' : ',"span_id":"') + identity.spanId;
    open = true;
  }
  if (identity.parentSpanId !== undefined) {
    json += (open ? '","parent_span_id":"' : ',"parent_span_id":"') + identity.parentSpanId;
    open = true;
  }
  const now = Date.now();
  return (
    json +
    TAILS[(open ? 1 : 0) | (identity.personless ? 2 : 0) | (identity.internalUser ? 4 : 0)] +
    isoSecond(now) +
    MILLIS_THEN_UUID[now % 1000] +
    randomUuid() +
    '"}'
  );
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

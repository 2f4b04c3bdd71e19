import { randomUuid } from '../request/random-ids.js';
import { isoTimestamp, type ApiRequestFields, type EventIdentity } from './telemetry-events.js';

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

/** The quoted names an app repeats on every request (endpoints, methods, environment), kept once each. */
const names = new Map<string, string>();
const MAX_NAMES = 1000;

function quoteName(text: string): string {
  let json = names.get(text);
  if (json === undefined) {
    json = quote(text);
    if (names.size >= MAX_NAMES) names.clear();
    names.set(text, json);
  }
  return json;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/**
 * The JSON of `apiRequestEvent(identity, f)` with a new uuid and timestamp,
 * written directly: the same text `JSON.stringify` gives of that event (keys
 * in the same order), without building the event first. The one event every
 * request sends, so it is the one worth writing by hand: the request, trace
 * and span ids, the uuid and the timestamp are checked or made by the module
 * and need no escaping, and the endpoint, method and environment repeat. Used
 * where no `beforeSend` needs the event as an object.
 */
export function apiRequestJson(identity: EventIdentity, f: ApiRequestFields): string {
  const success = f.success ?? (f.statusCode >= 200 && f.statusCode < 300);
  let json =
    '{"event":"api_request","distinct_id":' +
    quote(identity.distinctId) +
    ',"properties":{"endpoint":' +
    quoteName(f.endpoint) +
    ',"method":' +
    quoteName(f.method) +
    ',"status_code":' +
    number(f.statusCode) +
    ',"response_time_ms":' +
    number(round(f.durationMs)) +
    ',"success":' +
    (success ? 'true' : 'false') +
    ',"user_id":' +
    quote(identity.userId) +
    ',"environment":' +
    quoteName(identity.environment);
  // A request id is checked where the operation starts (letters, digits, `-_.:`), trace and span ids are hex:
  // nothing in them to escape.
  if (identity.requestId !== undefined) json += ',"request_id":"' + identity.requestId + '"';
  if (identity.sessionId !== undefined) json += ',"$session_id":' + quote(identity.sessionId);
  if (identity.traceId !== undefined) json += ',"trace_id":"' + identity.traceId + '"';
  if (identity.spanId !== undefined) json += ',"span_id":"' + identity.spanId + '"';
  if (identity.parentSpanId !== undefined) json += ',"parent_span_id":"' + identity.parentSpanId + '"';
  if (identity.personless) json += ',"$process_person_profile":false';
  if (identity.internalUser) json += ',"is_internal_user":true';
  return json + '},"timestamp":"' + isoTimestamp(Date.now()) + '","uuid":"' + randomUuid() + '"}';
}

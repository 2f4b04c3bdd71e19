import { randomUUID } from 'node:crypto';
import type { ApiRequestFields, EventIdentity } from './telemetry-events.js';

/**
 * `api_request`, the event every request sends, as the values it is made of: what a request pays for its
 * event is this array. Its JSON is written where the batch leaves (`renderApiRequest`, on the sending
 * thread), so the request path builds no event object, no JSON text and no UTF-8 bytes.
 */
export type ApiRequestRecord = [
  distinctId: string,
  endpoint: string,
  method: string,
  statusCode: number,
  durationMs: number,
  success: boolean,
  userId: string,
  environment: string,
  requestId: string | undefined,
  sessionId: string | undefined,
  traceId: string | undefined,
  spanId: string | undefined,
  parentSpanId: string | undefined,
  personless: boolean,
  internalUser: boolean,
  /** When it was recorded (`Date.now()`): its `timestamp`. */
  at: number,
  /** Its number among the sender's events, set where it is queued: with the sender's seed, its `uuid`. */
  sequence: number,
];

/** Keys, punctuation and the few numbers an `api_request`'s JSON holds besides its texts. */
const FIXED_BYTES = 400;

/** The record of `apiRequestEvent(identity, f)`, made now. */
export function apiRequestRecord(identity: EventIdentity, f: ApiRequestFields): ApiRequestRecord {
  return [
    identity.distinctId,
    f.endpoint,
    f.method,
    f.statusCode,
    f.durationMs,
    f.success ?? (f.statusCode >= 200 && f.statusCode < 300),
    identity.userId,
    identity.environment,
    identity.requestId,
    identity.sessionId,
    identity.traceId,
    identity.spanId,
    identity.parentSpanId,
    identity.personless,
    identity.internalUser === true,
    Date.now(),
    0,
  ];
}

/** About the bytes of the record's JSON (its texts' lengths and the rest): what it weighs in the queue's budget. */
export function recordBytes(r: ApiRequestRecord): number {
  return (
    FIXED_BYTES +
    r[0].length +
    r[1].length +
    r[2].length +
    r[6].length +
    r[7].length +
    (r[8]?.length ?? 0) +
    (r[9]?.length ?? 0) +
    (r[10]?.length ?? 0) +
    (r[11]?.length ?? 0) +
    (r[12]?.length ?? 0)
  );
}

/** A sender's seed of uuids: a random UUID v4's first 24 characters, and 48 random bits as two numbers of 24. */
export interface UuidSeed {
  head: string;
  high: number;
  low: number;
}

/** A new seed (`crypto.randomUUID()`'s randomness). */
export function uuidSeed(): UuidSeed {
  const uuid = randomUUID();
  return { head: uuid.slice(0, 24), high: parseInt(uuid.slice(24, 30), 16), low: parseInt(uuid.slice(30), 16) };
}

/** The ISO text of one second, up to its `.` (`renderApiRequest`): kept for a batch, whose events share their seconds. */
export interface SecondText {
  second: number;
  text: string;
}

/**
 * The JSON of `apiRequestEvent` for a record: the same text as `JSON.stringify` of that event (keys in the
 * same order), written by joining its pieces. Its `uuid` is the seed's, its last 48 bits changed by the
 * record's sequence number: unique among the sender's events, and the same on each try of its batch
 * (PostHog deduplicates a batch it took whose answer was lost). Self-contained (no imports, no outer
 * names): the sending thread runs its text.
 */
export function renderApiRequest(r: ApiRequestRecord, seed: UuidSeed, clock: SecondText): string {
  const ms = r[15];
  const second = Math.floor(ms / 1000);
  if (second !== clock.second) {
    clock.second = second;
    clock.text = new Date(second * 1000).toISOString().slice(0, -4);
  }
  const millis = ms - second * 1000;
  const sequence = r[16];
  const high = ((seed.high ^ Math.floor(sequence / 0x1000000)) & 0xffffff).toString(16);
  const low = ((seed.low ^ sequence) & 0xffffff).toString(16);
  const duration = Math.round(r[4] * 100) / 100;
  let json =
    '{"event":"api_request","distinct_id":' +
    JSON.stringify(r[0]) +
    ',"properties":{"endpoint":' +
    JSON.stringify(r[1]) +
    ',"method":' +
    JSON.stringify(r[2]) +
    ',"status_code":' +
    (Number.isFinite(r[3]) ? String(r[3]) : 'null') +
    ',"response_time_ms":' +
    (Number.isFinite(duration) ? String(duration) : 'null') +
    (r[5] ? ',"success":true,"user_id":' : ',"success":false,"user_id":') +
    JSON.stringify(r[6]) +
    ',"environment":' +
    JSON.stringify(r[7]);
  if (r[8] !== undefined) json += ',"request_id":' + JSON.stringify(r[8]);
  if (r[9] !== undefined) json += ',"$session_id":' + JSON.stringify(r[9]);
  if (r[10] !== undefined) json += ',"trace_id":' + JSON.stringify(r[10]);
  if (r[11] !== undefined) json += ',"span_id":' + JSON.stringify(r[11]);
  if (r[12] !== undefined) json += ',"parent_span_id":' + JSON.stringify(r[12]);
  if (r[13]) json += ',"$process_person_profile":false';
  if (r[14]) json += ',"is_internal_user":true';
  return (
    json +
    '},"timestamp":"' +
    clock.text +
    (millis < 10 ? '00' : millis < 100 ? '0' : '') +
    millis +
    'Z","uuid":"' +
    seed.head +
    '000000'.slice(high.length) +
    high +
    '000000'.slice(low.length) +
    low +
    '"}'
  );
}

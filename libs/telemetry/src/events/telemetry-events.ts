import { randomUuid } from '../request/random-ids.js';
import { toBoundedJson, truncate } from '../privacy/bounded.js';
import type { ErrorDetails } from '../errors/error-details.js';

/** One event as it goes on the wire to PostHog's `/batch/` endpoint. */
export interface TelemetryEvent {
  event: string;
  distinct_id: string;
  properties: Record<string, unknown>;
  timestamp: string;
  uuid: string;
}

/** Who an event belongs to and how it correlates: the same for every event of a request. */
export interface EventIdentity {
  distinctId: string;
  /** `distinctId` is a UUID the module made (an anonymous request's): nothing in it to escape. */
  madeDistinctId?: boolean;
  requestId?: string;
  userId: string;
  environment: string;
  sessionId?: string;
  /** No person profile for anonymous traffic, so it is not merged into one person. */
  personless: boolean;
  /** Set when internal users are tagged rather than dropped. */
  internalUser?: boolean;
  /** W3C trace id of the operation (`trace_id`). */
  traceId?: string;
  /** The operation's own span id (`span_id`): the `parent_span_id` of the services it calls. */
  spanId?: string;
  /** The caller's span id (`parent_span_id`), when there is one. */
  parentSpanId?: string;
}

export interface ApiRequestFields {
  endpoint: string;
  method: string;
  statusCode: number;
  durationMs: number;
  /** Whether it succeeded, when more than the status says (a stream cut midway after a 200); 2xx otherwise. */
  success?: boolean;
}

export interface ApiErrorFields {
  endpoint: string;
  method: string;
  statusCode: number;
  category: string;
  details: ErrorDetails;
  /** The uuid of the `$exception` sent for the same error, when one was. */
  exceptionUuid?: string;
  /** The id of the Sentry event sent for the same error, when one was. */
  sentryEventId?: string;
}

export interface SlowRequestFields {
  endpoint: string;
  method: string;
  durationMs: number;
  thresholdMs: number;
}

function event(name: string, identity: EventIdentity, properties: Record<string, unknown>): TelemetryEvent {
  properties.user_id = identity.userId;
  properties.environment = identity.environment;
  if (identity.requestId !== undefined) properties.request_id = identity.requestId;
  if (identity.sessionId !== undefined) properties.$session_id = identity.sessionId;
  if (identity.traceId !== undefined) properties.trace_id = identity.traceId;
  if (identity.spanId !== undefined) properties.span_id = identity.spanId;
  if (identity.parentSpanId !== undefined) properties.parent_span_id = identity.parentSpanId;
  if (identity.personless) properties.$process_person_profile = false;
  if (identity.internalUser) properties.is_internal_user = true;
  return {
    event: name,
    distinct_id: identity.distinctId,
    properties,
    timestamp: isoTimestamp(Date.now()),
    uuid: randomUuid(),
  };
}

/** The ISO 8601 text of the current second, up to its `.`: one `Date` formatted per second, not per event. */
let second = Number.NaN;
let secondText = '';

/** `new Date(ms).toISOString()` up to its `.`, for a whole number of milliseconds. */
export function isoSecond(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s !== second) {
    secondText = new Date(s * 1000).toISOString().slice(0, -4);
    second = s;
  }
  return secondText;
}

/** `new Date(ms).toISOString()`, for a whole number of milliseconds. */
export function isoTimestamp(ms: number): string {
  return isoSecond(ms) + MILLIS[ms - Math.floor(ms / 1000) * 1000];
}

/** `000Z` to `999Z`. */
const MILLIS = Array.from({ length: 1000 }, (_, milli) => String(milli).padStart(3, '0') + 'Z');
/** `000Z","uuid":"` to `999Z","uuid":"`: what follows the second in `api_request`'s JSON (events/api-request-json.ts). */
export const MILLIS_THEN_UUID = MILLIS.map((millis) => millis + '","uuid":"');

const round = (ms: number) => Math.round(ms * 100) / 100;

/** `api_request`: one per request that reached the app. */
export function apiRequestEvent(identity: EventIdentity, f: ApiRequestFields): TelemetryEvent {
  return event('api_request', identity, {
    endpoint: f.endpoint,
    method: f.method,
    status_code: f.statusCode,
    response_time_ms: round(f.durationMs),
    success: f.success ?? (f.statusCode >= 200 && f.statusCode < 300),
  });
}

/** `slow_request`: a request that took longer than the threshold. */
export function slowRequestEvent(identity: EventIdentity, f: SlowRequestFields): TelemetryEvent {
  return event('slow_request', identity, {
    endpoint: f.endpoint,
    method: f.method,
    duration_ms: round(f.durationMs),
    threshold_ms: f.thresholdMs,
  });
}

/** `api_error`: a request that failed with an exception. */
export function apiErrorEvent(identity: EventIdentity, f: ApiErrorFields): TelemetryEvent {
  const properties: Record<string, unknown> = {
    error_type: f.category,
    error_message: f.details.message,
    exception_type: f.details.exceptionType,
    endpoint: f.endpoint,
    method: f.method,
    status_code: f.statusCode,
    traceback: f.details.traceback,
    error_context: truncate(
      `${f.details.exceptionType} (${f.category}) while handling ${f.method} ${f.endpoint}, answered ${f.statusCode}: ${f.details.message}`,
      500,
    ),
  };
  if (f.exceptionUuid !== undefined) properties.$exception_uuid = f.exceptionUuid;
  if (f.sentryEventId !== undefined) properties.sentry_event_id = f.sentryEventId;
  return event('api_error', identity, properties);
}

/**
 * An event of the app's own (`TelemetryService.capture`): its properties
 * bounded, made JSON-safe and redacted, then the request's correlation
 * properties added where the caller did not set them.
 */
export function customEvent(
  name: string,
  identity: EventIdentity,
  properties: Record<string, unknown> | undefined,
  redact?: (text: string) => string,
): TelemetryEvent {
  const own = (toBoundedJson(properties ?? {}, redact) ?? {}) as Record<string, unknown>;
  const built = event(truncate(redact ? redact(truncate(name, 400)) : name, 200), identity, {});
  built.properties = { ...built.properties, ...(typeof own === 'object' && !Array.isArray(own) ? own : {}) };
  return built;
}

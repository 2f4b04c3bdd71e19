import type { PostHog } from 'posthog-node';
import { Operation } from './operation.js';
import { OPERATION } from './request-context.js';

/**
 * Opens the request's posthog-node context (`enterContext`, for the rest of
 * this request's async work), so the app's own `posthog.capture()` calls get
 * the same `distinct_id`, `$session_id`, `request_id`, `user_id`,
 * `environment`, `trace_id`, `span_id` and `parent_span_id` as the module's events. The request state rides along under a
 * symbol key (never serialised): one AsyncLocalStorage serves both.
 *
 * The user is known only after the app's auth guards ran, so the distinct id
 * is a getter on the stored context, read when an event is captured; `user_id`
 * and `$process_person_profile` are added by `stampRequestIdentity`, which
 * knows the event's own distinct id.
 */
export function enterRequestContext(posthog: PostHog, operation: Operation, environment: string): void {
  const properties = contextProperties(operation, environment);
  posthog.enterContext({ sessionId: operation.sessionId, properties }, { fresh: true });
  adoptStoredContext(posthog, operation, properties);
}

/** As `enterRequestContext`, for `fn` only (`withContext`): an operation inside another, or outside any request. */
export function runInRequestContext<T>(posthog: PostHog, operation: Operation, environment: string, fn: () => T): T {
  const properties = contextProperties(operation, environment);
  return posthog.withContext(
    { sessionId: operation.sessionId, properties },
    () => {
      adoptStoredContext(posthog, operation, properties);
      return fn();
    },
    { fresh: true },
  );
}

function contextProperties(operation: Operation, environment: string): Record<string, unknown> {
  const properties: Record<PropertyKey, unknown> = { request_id: operation.requestId, environment, trace_id: operation.traceId, span_id: operation.spanId };
  if (operation.parentSpanId !== undefined) properties.parent_span_id = operation.parentSpanId;
  properties[OPERATION] = operation;
  return properties as Record<string, unknown>;
}

/** posthog-node stores a copy of the context; the copy is what later captures read. */
function adoptStoredContext(posthog: PostHog, operation: Operation, properties: Record<string, unknown>): void {
  const stored = posthog.getContext();
  if (!stored) return;
  Object.defineProperty(stored, 'distinctId', { enumerable: true, configurable: true, get: () => operation.distinctId });
  stored.properties = properties;
}

/**
 * posthog-node `before_send`, first in line. An event for the request's own
 * distinct id (named by the caller or taken from the context) gets the
 * request's `user_id`, and `$process_person_profile: false` while the request
 * is anonymous. An event the app captures for another distinct id (a login, a
 * sign-up, a webhook naming its user) keeps only the request's `request_id`,
 * `$session_id` and `environment`. What the caller passed itself always wins.
 * `identify()` and `alias()` carry no context at all (posthog-node's choice),
 * so nothing is stamped on them.
 */
export function stampRequestIdentity<E extends { distinctId?: string; properties?: Record<PropertyKey, unknown> }>(event: E): E {
  const properties = event?.properties;
  const operation = properties?.[OPERATION];
  if (!(operation instanceof Operation)) return event;
  if (event.distinctId !== operation.distinctId) return event;
  if (!('user_id' in properties!)) properties!.user_id = operation.userId;
  if (operation.personless && !('$process_person_profile' in properties!)) properties!.$process_person_profile = false;
  return event;
}

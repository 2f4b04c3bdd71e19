import type { PostHog } from 'posthog-node';
import { Operation } from './operation.js';
import { OPERATION } from './request-context.js';
import { RequestScope, scopeStorage } from './request-scope.js';

/**
 * Runs `fn(a, b, c, d)` in the operation's posthog-node context, so the app's own
 * `posthog.capture()` calls get the same `distinct_id`, `$session_id`,
 * `request_id`, `user_id`, `environment`, `trace_id`, `span_id` and
 * `parent_span_id` as the module's events. The operation rides along under a
 * symbol key (never serialised): one AsyncLocalStorage serves both.
 *
 * The user is known only after the app's auth guards ran, so the distinct id
 * is a getter, read when an event is captured; `user_id` and
 * `$process_person_profile` are added by `stampRequestIdentity`, which knows
 * the event's own distinct id.
 */
export function runInRequestContext<A, B, C, D, T>(
  posthog: PostHog,
  operation: Operation,
  environment: string,
  fn: (a: A, b: B, c: C, d: D) => T,
  a: A,
  b: B,
  c: C,
  d: D,
): T {
  const scope = new RequestScope(operation, environment);
  const storage = scopeStorage(posthog);
  if (storage) return storage.run(scope, fn, a, b, c, d);
  // posthog-node stores a copy of what it is given: the copy gets the scope's getter and properties.
  return posthog.withContext(
    { sessionId: operation.sessionId, properties: scope.properties },
    () => {
      const stored = posthog.getContext();
      if (stored) {
        Object.defineProperty(stored, 'distinctId', { enumerable: true, configurable: true, get: () => operation.distinctId });
        stored.properties = scope.properties;
      }
      return fn(a, b, c, d);
    },
    { fresh: true },
  );
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
  if (!properties || !(operation instanceof Operation)) return event;
  if (event.distinctId !== operation.distinctId) return event;
  if (!('user_id' in properties)) properties.user_id = operation.userId;
  if (operation.personless && !('$process_person_profile' in properties)) properties.$process_person_profile = false;
  return event;
}

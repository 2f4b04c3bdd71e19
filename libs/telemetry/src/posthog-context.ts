import type { PostHog } from 'posthog-node';
import { REQUEST_STATE, type RequestState } from './request-context.js';

/** Under this key the context also carries how to read the request's identity once auth guards ran (never serialised). */
const REQUEST_IDENTITY = Symbol('nestjs-posthog-telemetry.request-identity');

/**
 * Opens the request's posthog-node context (`enterContext`, for the rest of
 * this request's async work), so the app's own `posthog.capture()` calls get
 * the same `distinct_id`, `$session_id`, `request_id`, `user_id` and
 * `environment` as the module's events. The request state rides along under a
 * symbol key (never serialised): one AsyncLocalStorage serves both.
 *
 * The user is known only after the app's auth guards ran, so the distinct id
 * is a getter on the stored context, read when an event is captured; `user_id`
 * and `$process_person_profile` are added by `stampRequestIdentity`, which
 * knows the event's own distinct id.
 */
export function enterRequestContext(
  posthog: PostHog,
  state: RequestState,
  environment: string,
  resolveUser: (state: RequestState) => void,
): void {
  const identity = (): RequestState => (resolveUser(state), state);
  const properties: Record<PropertyKey, unknown> = { request_id: state.requestId, environment, [REQUEST_STATE]: state, [REQUEST_IDENTITY]: identity };
  posthog.enterContext({ sessionId: state.sessionId, properties: properties as Record<string, unknown> }, { fresh: true });
  const stored = posthog.getContext();
  if (stored) {
    // posthog-node stores a copy; the copy is what later captures read.
    Object.defineProperty(stored, 'distinctId', { enumerable: true, configurable: true, get: () => identity().distinctId });
    stored.properties = properties as Record<string, unknown>;
  }
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
  const identity = properties?.[REQUEST_IDENTITY];
  if (typeof identity !== 'function') return event;
  const state = (identity as () => RequestState)();
  if (event.distinctId !== state.distinctId) return event;
  if (!('user_id' in properties!)) properties!.user_id = state.userId;
  if (state.personless && !('$process_person_profile' in properties!)) properties!.$process_person_profile = false;
  return event;
}

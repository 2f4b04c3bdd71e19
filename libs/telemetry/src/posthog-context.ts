import type { PostHog } from 'posthog-node';
import { REQUEST_STATE, type RequestState } from './request-context.js';

/**
 * Opens the request's posthog-node context (`enterContext`, for the rest of
 * this request's async work), so the app's own `posthog.capture()` calls get
 * the same `distinct_id`, `$session_id`, `request_id`, `user_id` and
 * `environment` as the module's events. The request state rides along under a
 * symbol key (never serialised): one AsyncLocalStorage serves both.
 *
 * The user is known only after the app's auth guards ran, so the identity
 * fields are getters on the stored context, read when an event is captured.
 */
export function enterRequestContext(
  posthog: PostHog,
  state: RequestState,
  environment: string,
  resolveUser: (state: RequestState) => void,
): void {
  const properties: Record<PropertyKey, unknown> = { request_id: state.requestId, environment, [REQUEST_STATE]: state };
  Object.defineProperties(properties, {
    user_id: { enumerable: true, get: () => (resolveUser(state), state.userId) },
    // `undefined` is dropped when the event is serialised: personless only while anonymous.
    $process_person_profile: { enumerable: true, get: () => (state.personless ? false : undefined) },
  });
  posthog.enterContext({ sessionId: state.sessionId, properties: properties as Record<string, unknown> }, { fresh: true });
  const stored = posthog.getContext();
  if (stored) {
    // posthog-node stores a copy; the copy is what later captures read.
    Object.defineProperty(stored, 'distinctId', { enumerable: true, configurable: true, get: () => (resolveUser(state), state.distinctId) });
    stored.properties = properties as Record<string, unknown>;
  }
}

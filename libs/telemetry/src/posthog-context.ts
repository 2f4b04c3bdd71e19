import { REQUEST_STATE, type RequestState } from './request-context.js';

/**
 * The posthog-node context of a request: the app's own `posthog.capture()`
 * calls inside it get the same `distinct_id`, `$session_id`, `request_id`,
 * `user_id` and `environment` as the module's events. The request state rides
 * along under a symbol key (never serialised), so one AsyncLocalStorage serves both.
 */
export function posthogContextOf(state: RequestState, environment: string) {
  const properties: Record<PropertyKey, unknown> = {
    request_id: state.requestId,
    user_id: state.userId,
    environment,
    [REQUEST_STATE]: state,
  };
  if (state.personless) properties.$process_person_profile = false;
  return {
    distinctId: state.distinctId,
    ...(state.sessionId !== undefined ? { sessionId: state.sessionId } : {}),
    properties: properties as Record<string, unknown>,
  };
}

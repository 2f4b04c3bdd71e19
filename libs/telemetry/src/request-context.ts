import { randomUUID } from 'node:crypto';
import type { TelemetryUser } from './telemetry.options.js';

/** Where a request's state is kept: on the Node request object, and in the posthog-node context properties. */
export const REQUEST_STATE = Symbol.for('nestjs-posthog-telemetry.request-state');

/** What any code running inside a request can read of it (see `getRequestContext`). */
export interface TelemetryRequestContext {
  /** The correlation id, also sent back as `X-Request-ID`. */
  readonly requestId: string;
  /** The frontend's PostHog session (`X-POSTHOG-SESSION-ID`), if it sent one. */
  readonly sessionId?: string;
  /** The `distinct_id` of this request's events: the user, else the frontend's distinct id, else an anonymous id. */
  readonly distinctId: string;
  /** The user id, or `anonymous`. */
  readonly userId: string;
  /** The resolved user, once an auth guard has set one. */
  readonly user?: TelemetryUser;
}

/**
 * Everything the module knows about one request, from where it enters
 * (`RequestEntry`) to where it ends (the response's `close`). Internal.
 */
export class RequestState implements TelemetryRequestContext {
  /** Route template, once a route matched (guard or exception filter). */
  endpoint?: string;
  /** No events for this request (`@SkipTelemetry()` or an excluded path). */
  skip = false;
  /** The first exception the request failed with. */
  error: unknown;
  hasError = false;
  /** One of the app's exception filters answered that exception (Nest's own default answer otherwise). */
  errorAnswered = false;
  /** The body stream of a `StreamableFile` answer: a source that failed is not a client that left. */
  stream?: { errored?: unknown };
  /** The request's URL as it arrived, to keep it out of error messages. */
  rawUrl?: string;
  /** The adapter's request (Express or Fastify), which auth guards decorate with `user`. */
  adapterRequest: unknown;
  user?: TelemetryUser;
  private anonymousId?: string;

  constructor(
    readonly requestId: string,
    readonly method: string,
    readonly startedAt: number,
    readonly sessionId: string | undefined,
    /** The frontend's PostHog distinct id (`X-POSTHOG-DISTINCT-ID`), used only while no user is known. */
    readonly frontendDistinctId: string | undefined,
    rawRequest: unknown,
  ) {
    this.adapterRequest = rawRequest;
  }

  get distinctId(): string {
    return this.user?.id ?? this.frontendDistinctId ?? (this.anonymousId ??= randomUUID());
  }

  /** True when no person should be created for the events (no user, no frontend id). */
  get personless(): boolean {
    return this.user === undefined && this.frontendDistinctId === undefined;
  }

  get userId(): string {
    return this.user?.id ?? 'anonymous';
  }

  /** Keeps the first error; `answered` says an app filter took it (a later sighting of the same error can say so). */
  noteError(error: unknown, answered = false): void {
    if (this.hasError) {
      if (answered && error === this.error) this.errorAnswered = true;
      return;
    }
    this.hasError = true;
    this.error = error;
    this.errorAnswered = answered;
  }
}

/** The state attached to a request by `RequestEntry`, given the adapter's or the raw request. */
export function stateOfRequest(request: any): RequestState | undefined {
  const raw = request?.raw ?? request;
  const state = raw?.[REQUEST_STATE];
  return state instanceof RequestState ? state : undefined;
}

/**
 * The correlation id of a request (its `X-Request-ID` and its events' `request_id`), given Express's or
 * Fastify's request, Node's, or an `ExecutionContext`; `undefined` for a request the module did not see.
 * For other libraries' request-id options, e.g. nestjs-cls's `idGenerator: (req) => requestIdOf(req) ?? randomUUID()`.
 */
export function requestIdOf(request: unknown): string | undefined {
  const context = request as { switchToHttp?: () => { getRequest(): unknown } } | undefined;
  return stateOfRequest(typeof context?.switchToHttp === 'function' ? context.switchToHttp().getRequest() : request)?.requestId;
}

/** Anything that can say which request is running: each module's posthog-node client. */
interface ContextSource {
  getContext(): { properties?: Record<PropertyKey, unknown> } | undefined;
}
const contextSources = new Set<ContextSource>();

export function registerContextSource(source: ContextSource): () => void {
  contextSources.add(source);
  return () => contextSources.delete(source);
}

/** The state of the request the caller runs in, found through posthog-node's async context. */
export function currentRequestState(): RequestState | undefined {
  for (const source of contextSources) {
    const state = source.getContext()?.properties?.[REQUEST_STATE];
    if (state instanceof RequestState) return state;
  }
  return undefined;
}

/**
 * The context of the request the caller runs in (correlation id, user, session),
 * from any code: a service, a repository, a callback. `undefined` outside requests.
 */
export function getRequestContext(): TelemetryRequestContext | undefined {
  const state = currentRequestState();
  if (!state) return undefined;
  return {
    requestId: state.requestId,
    sessionId: state.sessionId,
    distinctId: state.distinctId,
    userId: state.userId,
    user: state.user,
  };
}

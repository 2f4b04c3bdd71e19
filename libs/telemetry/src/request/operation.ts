import type { ResponseHeader } from '../http/response-header.js';
import { randomUuid } from './random-ids.js';
import type { TelemetryUser } from '../telemetry.options.js';
import { newSpanId, newTrace, type TraceStart } from '../trace/trace-context.js';

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
  /** The W3C trace id (32 hex) of the operation: its events' `trace_id`. */
  readonly traceId?: string;
  /** The operation's own span id (16 hex): the parent of the calls it makes (`traceparent`), its events' `span_id`. */
  readonly spanId?: string;
}

/** Finds the user of a request once the app's auth ran (`resolveUser`, bounded; never throws). */
export type UserResolver = (request: unknown) => TelemetryUser | undefined;

/** What is known where an operation enters. */
export interface OperationStart {
  requestId: string;
  method: string;
  /** `performance.now()` at arrival. */
  startedAt: number;
  /** The frontend's PostHog session (`X-POSTHOG-SESSION-ID`). */
  sessionId?: string;
  /** The frontend's PostHog distinct id (`X-POSTHOG-DISTINCT-ID`), used only while no user is known. */
  frontendDistinctId?: string;
  /** The frontend distinct id is a client's unverified claim: its events are personless (`frontendIdentity: 'anonymous'`). */
  frontendIdClaimed?: boolean;
  /** The URL as it arrived, kept out of error messages. */
  rawUrl?: string;
  /** The request as the transport has it; auth guards decorate the adapter's with `user`. */
  request: unknown;
  resolveUser: UserResolver;
  /** No events for this operation (an excluded path, a preflight, the module turned off). */
  skip: boolean;
  /** Called for an error noted after the operation ended (a handler that fails after its response was sent). */
  onLateError?: (operation: Operation, error: unknown) => void;
  /** The trace it continues (an incoming `traceparent`, the enclosing operation, the app's tracer); a new one otherwise. */
  trace?: TraceStart;
  /**
   * For a trace started here: the app's tracer's active span, asked once more where the route is reached
   * (a tracer whose span begins after the operation entered, in a middleware or the framework's handler).
   */
  laterTrace?: () => TraceStart | undefined;
}

/** A finished operation, as the outcome step reads it (events/outcome.ts). */
export interface FinishedOperation {
  /** The route template, when a route was reached. */
  endpoint: string | undefined;
  method: string;
  /** The status the response was sent with (or began to be). */
  status: number;
  /** The response was sent whole, or was cut by the server: not a client that went away. */
  sent: boolean;
  durationMs: number;
  hasError: boolean;
  error: unknown;
  /** One of the app's own exception filters answered the error. */
  errorAnswered: boolean;
}

/**
 * One operation (an HTTP request) from where it enters to where it ends: the
 * one record of it. It is written only through its verbs, each called by the
 * code that sees the fact (the route by the guard, an error by Nest's
 * exception hand-over, the end by the response's `close`); everything else
 * reads it. Internal.
 */
export class Operation implements TelemetryRequestContext {
  readonly requestId: string;
  readonly method: string;
  readonly startedAt: number;
  readonly sessionId: string | undefined;
  readonly frontendDistinctId: string | undefined;
  readonly rawUrl: string | undefined;
  /** The operation's own span id (16 hex, new). */
  readonly spanId: string;
  /** The response header that carries `requestId` (an HTTP request's): kept whatever the app writes (http/). */
  idHeader: ResponseHeader | undefined = undefined;
  /** What it was started with: read again only where it is rare (the user's resolver, a late error, a later trace). */
  readonly #start: OperationStart;
  #trace: TraceStart;
  /** A trace the module started, which the app's tracer may still replace where the route is reached. */
  #traceProvisional: boolean;
  #endpoint: string | undefined = undefined;
  #skip: boolean;
  #carried = false;
  /** The error it failed with, once there is one: most operations have none. */
  #failure: { error: unknown; answered: boolean } | undefined = undefined;
  #lateErrors = 0;
  #stream: { errored?: unknown } | undefined = undefined;
  #request: unknown;
  #user: TelemetryUser | undefined = undefined;
  #anonymousId: string | undefined = undefined;
  #ended = false;
  #status = 0;

  constructor(start: OperationStart) {
    this.requestId = start.requestId;
    this.method = start.method;
    this.startedAt = start.startedAt;
    this.sessionId = start.sessionId;
    this.frontendDistinctId = start.frontendDistinctId;
    this.rawUrl = start.rawUrl;
    this.spanId = newSpanId();
    this.#start = start;
    this.#trace = start.trace ?? newTrace();
    this.#traceProvisional = start.trace === undefined && start.laterTrace !== undefined;
    this.#request = start.request;
    this.#skip = start.skip;
  }

  /** W3C trace id (32 hex): continued from the caller or the app's tracer, or new. */
  get traceId(): string {
    return this.#trace.traceId;
  }

  /** The caller's span (an incoming `traceparent`'s, the enclosing operation's, the tracer's active span), if any. */
  get parentSpanId(): string | undefined {
    return this.#trace.parentSpanId;
  }

  /** W3C trace flags (`01`: sampled), as received, else `01`. */
  get traceFlags(): string {
    return this.#trace.flags;
  }

  /** The frontend distinct id is a client's unverified claim (see `frontendIdentity`). */
  get frontendIdClaimed(): boolean {
    return this.#start.frontendIdClaimed === true;
  }

  /** The operation has finished: what is noted now is late. */
  get ended(): boolean {
    return this.#ended;
  }

  /** The status the operation ended with (499: the client went away first); 0 before the end. */
  get endStatus(): number {
    return this.#status;
  }

  /** The route template, once a route was reached. */
  get endpoint(): string | undefined {
    return this.#endpoint;
  }

  /** No events for this operation. */
  get skip(): boolean {
    return this.#skip;
  }

  get hasError(): boolean {
    return this.#failure !== undefined;
  }

  /** The first error the operation failed with. */
  get error(): unknown {
    return this.#failure?.error;
  }

  /** The user, once the app's auth has set one on the request (looked for on each read until found, or the end). */
  get user(): TelemetryUser | undefined {
    if (this.#user === undefined && !this.#ended) this.#user = this.#start.resolveUser(this.#request);
    return this.#user;
  }

  get distinctId(): string {
    const user = this.user;
    if (user !== undefined) return user.id;
    return this.unidentifiedDistinctId;
  }

  /** The distinct id while no user is known: the frontend's, else an anonymous one made once. */
  get unidentifiedDistinctId(): string {
    return this.frontendDistinctId ?? (this.#anonymousId ??= randomUuid());
  }

  /** True when no person should be created for the events: no user, and no frontend id or only a client's claim of one. */
  get personless(): boolean {
    return this.user === undefined && (this.frontendDistinctId === undefined || this.#start.frontendIdClaimed === true);
  }

  get userId(): string {
    const user = this.user;
    return user !== undefined ? user.id : 'anonymous';
  }

  /** The route the operation reached, seen with the adapter's request (the module's guard). */
  matchRoute(endpoint: string | undefined, request: unknown): void {
    this.#request = request;
    // A trace the module started gives way to the app's tracer's, when its span began only since.
    if (this.#traceProvisional) {
      this.#traceProvisional = false;
      const trace = this.#start.laterTrace?.();
      if (trace) this.#trace = trace;
    }
    if (endpoint !== undefined) this.#endpoint = endpoint;
  }

  /** `@SkipTelemetry()` on the route reached. */
  optOut(): void {
    this.#skip = true;
  }

  /**
   * The operation is recorded through the operations it carries (the GraphQL operations of an HTTP request):
   * it keeps its context (id, user) for the code running in it, and sends no events of its own.
   */
  carryOperations(): void {
    this.#carried = true;
  }

  /** Recorded through the operations it carries (`carryOperations`). */
  get carried(): boolean {
    return this.#carried;
  }

  /**
   * An error, where Nest hands it to the filters (or the app says so). The first
   * one is kept; `answered` says one of the app's filters took it, and a later
   * sighting of the same error can say so. Where no guard ran, the route seen
   * there is the operation's.
   */
  noteError(error: unknown, answered = false, seenAt?: { request: unknown; endpoint: string | undefined }): void {
    const failure = this.#failure;
    if (this.#ended) {
      // After the end (the client gave up, a handler failed after sending): its own report, once per operation.
      if (error !== failure?.error && this.#lateErrors++ === 0) this.#start.onLateError?.(this, error);
      return;
    }
    if (seenAt) {
      this.#request = seenAt.request;
      this.#endpoint ??= seenAt.endpoint;
    }
    if (failure !== undefined) {
      if (answered && error === failure.error) failure.answered = true;
      return;
    }
    this.#failure = { error, answered };
  }

  /** The body stream of a `StreamableFile` answer: a source that failed is not a client that left. */
  noteStream(stream: { errored?: unknown }): void {
    this.#stream = stream;
  }

  /**
   * The operation ends with the response's status. A response not sent whole
   * whose body stream failed was cut by the server: the stream's error is the
   * operation's, and the response counts as sent.
   */
  finish(status: number, sentWhole: boolean, now: number): FinishedOperation {
    const streamError = sentWhole ? undefined : this.#stream?.errored;
    if (streamError !== undefined && streamError !== null) this.noteError(streamError);
    const failure = this.#failure;
    const sent = sentWhole || failure !== undefined;
    // The user as the request ends: what its events are for.
    if (this.#user === undefined) this.#user = this.#start.resolveUser(this.#request);
    this.#ended = true;
    this.#status = sent ? status : 499;
    return {
      endpoint: this.#endpoint,
      method: this.method,
      status,
      sent,
      durationMs: now - this.startedAt,
      hasError: failure !== undefined,
      error: failure?.error,
      errorAnswered: failure !== undefined && failure.answered,
    };
  }
}

import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { PostHog } from 'posthog-node';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { categorizeError } from './error-categorizer.js';
import { describeError } from './error-details.js';
import type { EventSink } from './event-sink.js';
import { isIgnoredError } from './ignored-errors.js';
import { TelemetryFailures } from './telemetry-failures.js';
import { currentRequestState, registerContextSource, RequestState, type TelemetryRequestContext, getRequestContext } from './request-context.js';
import { composeRedactor } from './redact.js';
import { UNMATCHED_ROUTE } from './route-template.js';
import { EVENT_SINK, POSTHOG_CLIENT, SENTRY, TELEMETRY_OPTIONS } from './telemetry.constants.js';
import { scrubSentryEvent, type SentryApi, type SentryScope } from './sentry-bridge.js';
import {
  apiErrorEvent,
  apiRequestEvent,
  customEvent,
  type EventIdentity,
  slowRequestEvent,
  type TelemetryEvent,
} from './telemetry-events.js';
import type { ResolvedTelemetryOptions, TelemetryUser } from './telemetry.options.js';

/** What the caller may pass to `captureApiRequest`; the rest comes from the request context. */
export interface CaptureApiRequestInput {
  endpoint: string;
  method: string;
  statusCode: number;
  durationMs: number;
}

export interface CaptureErrorInput {
  endpoint?: string;
  method?: string;
  statusCode?: number;
}

export interface CaptureSlowRequestInput {
  endpoint: string;
  method: string;
  durationMs: number;
  thresholdMs?: number;
}

/**
 * The module's public face and the one place that turns request state into
 * events: `recordRequestEnd` at the end of each request, `capture*` for the
 * app's own calls. Every path is wrapped so telemetry never throws into the app.
 */
@Injectable()
export class PostHogTelemetryService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Telemetry');
  private readonly unregister: () => void;
  private shutDown?: Promise<void>;

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    @Inject(EVENT_SINK) private readonly sink: EventSink,
    private readonly failures: TelemetryFailures,
    @Optional() @Inject(SENTRY) private readonly sentry?: SentryApi,
  ) {
    this.unregister = registerContextSource(posthog);
  }

  /** The current request's correlation id, user and session, or `undefined` outside a request. */
  getRequestContext(): TelemetryRequestContext | undefined {
    return getRequestContext();
  }

  /** Sends an event of the app's own; inside a request it carries the request's `request_id`, user, session and `environment`. */
  capture(event: string, properties?: Record<string, unknown>): void {
    this.guard('capture', () => {
      const identity = this.identityOfCurrentRequest();
      if (identity) this.send(customEvent(event, identity, properties, this.redact));
    });
  }

  /** Sends an `api_request` event by hand (the module already sends one per request). */
  captureApiRequest(input: CaptureApiRequestInput): void {
    this.guard('captureApiRequest', () => {
      const identity = this.identityOfCurrentRequest();
      if (identity) this.send(apiRequestEvent(identity, input));
    });
  }

  /**
   * Sends an `api_error` for an error the app handled itself (a scheduled job,
   * an event handler, a caught failure), with its `$exception` and Sentry event
   * as for a request's error (status 500 unless given).
   */
  captureError(error: unknown, input: CaptureErrorInput = {}): void {
    this.guard('captureError', () => {
      const identity = this.identityOfCurrentRequest();
      if (!identity || isIgnoredError(error, this.options.ignoreErrors)) return;
      const state = currentRequestState();
      const statusCode = input.statusCode ?? 500;
      const apiError = this.errorEvent(identity, error, {
        endpoint: input.endpoint ?? state?.endpoint ?? UNMATCHED_ROUTE,
        method: input.method ?? state?.method ?? 'UNKNOWN',
        statusCode,
      });
      this.captureException(error, apiError, statusCode);
      this.captureInSentry(error, apiError, statusCode);
      this.send(apiError);
    });
  }

  /** Sends a `slow_request` event by hand. */
  captureSlowRequest(input: CaptureSlowRequestInput): void {
    this.guard('captureSlowRequest', () => {
      const identity = this.identityOfCurrentRequest();
      if (identity) this.send(slowRequestEvent(identity, { ...input, thresholdMs: input.thresholdMs ?? this.options.slowThresholdMs }));
    });
  }

  /** Delivers every queued event now (the module's own and the posthog-node client's). */
  async flush(): Promise<void> {
    await Promise.allSettled([this.sink.flush(), this.posthog.flush(), this.sentry?.flush(this.options.shutdownTimeoutMs)]);
  }

  /** Delivers every queued event, for at most `shutdownTimeoutMs`, and stops. Called by `app.close()`. */
  shutdown(): Promise<void> {
    this.shutDown ??= this.shutdownOnce();
    return this.shutDown;
  }

  onApplicationBootstrap(): void {
    if (this.options.enabled && this.options.apiKey === undefined) {
      this.logger.log('No POSTHOG_API_KEY: local mode, each event is logged here and nothing is sent.');
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.shutdown();
  }

  /**
   * The end of a request, from the response's `close` (request-entry.ts): the one
   * place that turns a request into its `api_request`, `slow_request` and `api_error`.
   */
  recordRequestEnd(state: RequestState, statusCode: number, finished: boolean): void {
    this.guard('recordRequestEnd', () => {
      if (state.skip || !this.options.enabled) return;
      const durationMs = performance.now() - state.startedAt;
      // 499: the client went away before the response was sent (nginx's convention).
      const status = finished ? statusCode : 499;
      this.resolveUser(state);
      const identity = this.identityOf(state);
      if (!identity) return;
      const endpoint = state.endpoint ?? UNMATCHED_ROUTE;
      this.send(apiRequestEvent(identity, { endpoint, method: state.method, statusCode: status, durationMs }));
      if (durationMs > this.options.slowThresholdMs) {
        this.send(slowRequestEvent(identity, { endpoint, method: state.method, durationMs, thresholdMs: this.options.slowThresholdMs }));
      }
      // An unknown route's 404 is not an application error: `api_request` records it. An error
      // thrown before any route was reached (a middleware) is, under the shared `(unmatched)` endpoint.
      const unknownRoute = state.endpoint === undefined && status === 404;
      if (state.hasError && !unknownRoute && !isIgnoredError(state.error, this.options.ignoreErrors)) {
        const apiError = this.errorEvent(identity, state.error, { endpoint, method: state.method, statusCode: status });
        this.captureException(state.error, apiError, status);
        this.captureInSentry(state.error, apiError, status);
        this.send(apiError);
      }
    });
  }

  /** Whether an error with this status goes to Error Tracking and Sentry (`captureExceptions`). */
  private isReportedServerError(status: number): boolean {
    const minStatus = this.options.captureExceptionsMinStatus;
    return minStatus !== undefined && status >= minStatus;
  }

  /**
   * PostHog Error Tracking: the same error through posthog-node's `captureException`
   * (an `$exception` with parsed stack frames), with the `api_error`'s correlation
   * properties; `$exception_uuid` on the `api_error` links the two.
   */
  private captureException(error: unknown, apiError: TelemetryEvent, status: number): void {
    if (!this.isReportedServerError(status) || this.options.apiKey === undefined) return;
    const p = apiError.properties;
    const uuid = randomUUID();
    const properties: Record<string, unknown> = {
      request_id: p.request_id,
      endpoint: p.endpoint,
      method: p.method,
      status_code: p.status_code,
      error_type: p.error_type,
      user_id: p.user_id,
      environment: p.environment,
    };
    if (p.$session_id !== undefined) properties.$session_id = p.$session_id;
    if (p.$process_person_profile === false) properties.$process_person_profile = false;
    try {
      this.posthog.captureException(error, apiError.distinct_id, properties, uuid);
      p.$exception_uuid = uuid;
    } catch (failure) {
      this.logOnce('captureException', failure);
    }
  }

  /**
   * Sentry alongside: the same server error, once, on a scope of its own
   * (tags of one request never reach another's event), scrubbed; its event id
   * goes on the `api_error` as `sentry_event_id`.
   */
  private captureInSentry(error: unknown, apiError: TelemetryEvent, status: number): void {
    if (!this.sentry || !this.isReportedServerError(status)) return;
    const p = apiError.properties;
    try {
      p.sentry_event_id = this.sentry.captureException(error, (scope: SentryScope) => {
        scope.setTags({ request_id: String(p.request_id), endpoint: String(p.endpoint), error_type: String(p.error_type) });
        scope.setUser(p.user_id === 'anonymous' ? null : { id: String(p.user_id) });
        scope.addEventProcessor(this.scrubSentry);
        return scope;
      });
    } catch (failure) {
      this.logOnce('Sentry captureException', failure);
    }
  }

  /** Finds the request's user once an auth guard has set it; a failing `resolveUser` counts as anonymous. */
  resolveUser(state: RequestState): TelemetryUser | undefined {
    if (state.user) return state.user;
    try {
      const user = this.options.resolveUser(state.adapterRequest);
      if (user && user.id !== undefined && user.id !== null && String(user.id) !== '') {
        state.user = { id: String(user.id).slice(0, 200), email: typeof user.email === 'string' ? user.email.slice(0, 200) : undefined };
      }
    } catch (error) {
      this.logOnce('resolveUser', error);
    }
    return state.user;
  }

  private errorEvent(identity: EventIdentity, error: unknown, at: { endpoint: string; method: string; statusCode: number }): TelemetryEvent {
    const category = categorizeError(error, this.customCategory, this.options.errorCategories);
    return apiErrorEvent(identity, { ...at, category, details: describeError(error, this.options.tracebackLimit, this.redact) });
  }

  /** Identity of an event sent now: the running request's, or the process's outside requests. `undefined`: drop it. */
  private identityOfCurrentRequest(): EventIdentity | undefined {
    if (!this.options.enabled) return undefined;
    const state = currentRequestState();
    if (state) {
      if (state.skip) return undefined;
      this.resolveUser(state);
      return this.identityOf(state);
    }
    return { distinctId: 'server', userId: 'anonymous', environment: this.options.environment, personless: true };
  }

  private identityOf(state: RequestState): EventIdentity | undefined {
    const internal = this.isInternal(state.user);
    if (internal && this.options.internalUsers === 'drop') return undefined;
    return {
      distinctId: state.distinctId,
      requestId: state.requestId,
      userId: state.userId,
      environment: this.options.environment,
      sessionId: state.sessionId,
      personless: state.personless,
      internalUser: internal,
    };
  }

  private isInternal(user: TelemetryUser | undefined): boolean {
    const email = user?.email;
    if (!email || this.options.internalDomains.length === 0) return false;
    const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase();
    return this.options.internalDomains.some((d) => domain === d || domain.endsWith('.' + d));
  }

  /** The app's categories, with a failure logged once; the built-in rules then decide. */
  private readonly customCategory = this.options.categorizeError
    ? (error: unknown) => {
        try {
          return this.options.categorizeError!(error);
        } catch (failure) {
          this.logOnce('categorizeError', failure);
          return undefined;
        }
      }
    : undefined;

  /** Built-in redaction, then the app's own; if that fails, the text is not sent at all. */
  private readonly redact = composeRedactor(this.options.redact, (error) => this.logOnce('redact', error), this.options.redactEmails);
  private readonly scrubSentry = scrubSentryEvent(this.redact);

  /** The one way out: the app's `beforeSend`, then the sink. A failing `beforeSend` drops the event. */
  private send(event: TelemetryEvent): void {
    let outgoing: TelemetryEvent | null | undefined = event;
    if (this.options.beforeSend) {
      try {
        outgoing = this.options.beforeSend(event);
      } catch (error) {
        this.logOnce('beforeSend', error);
        return;
      }
    }
    if (outgoing) this.sink.enqueue(outgoing);
  }

  private async shutdownOnce(): Promise<void> {
    const timeoutMs = this.options.shutdownTimeoutMs;
    try {
      await Promise.allSettled([this.sink.shutdown(timeoutMs), this.posthog.shutdown(timeoutMs), this.sentry?.flush(timeoutMs)]);
    } finally {
      this.unregister();
    }
  }

  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.logOnce(what, error);
    }
  }

  /** Telemetry's own failures are logged once per kind, never thrown. Internal. */
  logOnce(what: string, error: unknown): void {
    this.failures.report(what, error);
  }

}

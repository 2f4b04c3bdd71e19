import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { PostHog } from 'posthog-node';
import { performance } from 'node:perf_hooks';
import { categorizeError, httpStatusOf } from './error-categorizer.js';
import { describeError } from './error-details.js';
import type { EventSink } from './event-sink.js';
import { isIgnoredError } from './ignored-errors.js';
import { TelemetryFailures } from './telemetry-failures.js';
import { currentRequestState, registerContextSource, RequestState, type TelemetryRequestContext, getRequestContext } from './request-context.js';
import { composeRedactor } from './redact.js';
import { UNMATCHED_ROUTE, withoutRawUrl } from './route-template.js';
import { EVENT_SINK, POSTHOG_CLIENT, SENTRY, TELEMETRY_OPTIONS } from './telemetry.constants.js';
import { scrubSentryEvent, isCapturedBySentry, untracedBy, type SentryApi, type SentryScope } from './sentry-bridge.js';
import { captureExceptionOnce, SharedPostHog } from './posthog-client.js';
import { currentJobRun } from './jobs/job-run.js';
import {
  apiErrorEvent,
  apiRequestEvent,
  customEvent,
  type EventIdentity,
  slowRequestEvent,
  type TelemetryEvent,
} from './telemetry-events.js';
import type { ResolvedTelemetryOptions, TelemetryUser } from './telemetry.options.js';

/** How an error reaches Sentry: handled or not, by what, and with which redaction. */
interface SentryCapture {
  handled: boolean;
  mechanism?: string;
  redact?: (text: string) => string;
}
/** Sentry's mechanism of the errors of requests: an unhandled one reached none of the app's filters. */
const REQUEST_MECHANISM = 'auto.http.nestjs_posthog_telemetry';
/** `captureError()`: the app caught the error and reported it. */
const APP_CAPTURED: SentryCapture = { handled: true, mechanism: 'manual.nestjs_posthog_telemetry' };

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
    // The module's own requests to PostHog (its sender's, the shared client's) never join the app's Sentry traces.
    const untraced = untracedBy(sentry);
    if (untraced) {
      sink.untraced = untraced;
      if (posthog instanceof SharedPostHog) posthog.untraced = untraced;
    }
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
    this.guard('captureError', () => this.reportError(error, input, APP_CAPTURED));
  }

  /** A scheduled job's or an event handler's failure (jobs/): as `captureError`, an error no code of the app's handled. Internal. */
  captureJobError(error: unknown, input: CaptureErrorInput, mechanism: string): void {
    this.guard('captureJobError', () => this.reportError(error, input, { handled: false, mechanism }));
  }

  /** `captureError`'s work; inside a job run (jobs/), its endpoint and method are the defaults. */
  private reportError(error: unknown, input: CaptureErrorInput, how: SentryCapture): void {
    const identity = this.identityOfCurrentRequest();
    if (!identity || isIgnoredError(error, this.options.ignoreErrors)) return;
    const at = currentRequestState() ?? currentJobRun(this.posthog);
    const statusCode = input.statusCode ?? 500;
    const apiError = this.errorEvent(identity, error, {
      endpoint: input.endpoint ?? at?.endpoint ?? UNMATCHED_ROUTE,
      method: input.method ?? at?.method ?? 'UNKNOWN',
      statusCode,
    });
    this.captureException(error, apiError, statusCode);
    if (!isCapturedBySentry(error)) this.captureInSentry(error, apiError, statusCode, how);
    this.send(apiError);
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
      // A body stream that failed midway was cut by the server, not by a client that left.
      const streamError = finished ? undefined : state.stream?.errored;
      if (streamError !== undefined && streamError !== null) state.noteError(streamError);
      // 499: the client went away before the response was sent (nginx's convention).
      const status = finished || state.hasError ? statusCode : 499;
      this.resolveUser(state);
      const identity = this.identityOf(state);
      if (!identity) return;
      const endpoint = state.endpoint ?? UNMATCHED_ROUTE;
      // An error no filter answered, on a response sent as a success: it failed after the headers went out.
      const failedMidway = state.hasError && !state.errorAnswered && status < 400;
      this.send(apiRequestEvent(identity, { endpoint, method: state.method, statusCode: status, durationMs, failed: failedMidway }));
      if (durationMs > this.options.slowThresholdMs) {
        this.send(slowRequestEvent(identity, { endpoint, method: state.method, durationMs, thresholdMs: this.options.slowThresholdMs }));
      }
      // An unknown route's 404 is not an application error: `api_request` records it. An error
      // thrown before any route was reached (a middleware) is, under the shared `(unmatched)` endpoint.
      const unknownRoute = state.endpoint === undefined && status === 404;
      if (state.hasError && !unknownRoute && !isIgnoredError(state.error, this.options.ignoreErrors)) {
        const redact = withoutRawUrl(this.redact, state.rawUrl, endpoint);
        const apiError = this.errorEvent(identity, state.error, { endpoint, method: state.method, statusCode: status }, redact);
        // Error Tracking and Sentry weigh a midway failure as the error itself would have answered.
        const severity = failedMidway ? (httpStatusOf(state.error) ?? 500) : status;
        this.captureException(state.error, apiError, severity);
        if (!isCapturedBySentry(state.error)) this.captureInSentry(state.error, apiError, severity, { handled: state.errorAnswered, redact });
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
   * properties; `$exception_uuid` on the `api_error` links the two. An error already
   * sent (the app's own `captureException`, an earlier request) is not sent again,
   * and the link names the `$exception` that was sent, or is left out.
   */
  private captureException(error: unknown, apiError: TelemetryEvent, status: number): void {
    if (!this.isReportedServerError(status) || this.options.apiKey === undefined) return;
    const p = apiError.properties;
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
      const uuid = captureExceptionOnce(this.posthog, error, apiError.distinct_id, properties);
      if (uuid !== undefined) p.$exception_uuid = uuid;
    } catch (failure) {
      this.logOnce('captureException', failure);
    }
  }

  /**
   * Sentry alongside: the same server error, once, on a scope of its own
   * (tags of one request never reach another's event), scrubbed; its event id
   * goes on the `api_error` as `sentry_event_id`.
   */
  private captureInSentry(error: unknown, apiError: TelemetryEvent, status: number, how: SentryCapture = APP_CAPTURED): void {
    if (!this.sentry || !this.isReportedServerError(status)) return;
    const p = apiError.properties;
    const scrub = how.redact ? scrubSentryEvent(how.redact) : this.scrubSentry;
    try {
      p.sentry_event_id = this.sentry.captureException(error, {
        // Unhandled: no code of the app's answered it; Sentry's "unhandled" filters and priority rely on this.
        mechanism: { type: how.mechanism ?? REQUEST_MECHANISM, handled: how.handled },
        captureContext: (scope: SentryScope) => {
          scope.setTags({ request_id: String(p.request_id), endpoint: String(p.endpoint), error_type: String(p.error_type) });
          scope.setUser(p.user_id === 'anonymous' ? null : { id: String(p.user_id) });
          scope.addEventProcessor(scrub);
          return scope;
        },
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

  private errorEvent(
    identity: EventIdentity,
    error: unknown,
    at: { endpoint: string; method: string; statusCode: number },
    redact = this.redact,
  ): TelemetryEvent {
    const category = categorizeError(error, this.customCategory, this.options.errorCategories);
    return apiErrorEvent(identity, { ...at, category, details: describeError(error, this.options.tracebackLimit, redact) });
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
    // The process's, under the correlation id of the scheduled job or event handler running (jobs/), if any.
    const requestId = currentJobRun(this.posthog)?.requestId;
    return { distinctId: 'server', requestId, userId: 'anonymous', environment: this.options.environment, personless: true };
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

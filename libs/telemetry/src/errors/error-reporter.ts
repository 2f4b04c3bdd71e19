import { Inject, Injectable } from '@nestjs/common';
import type { PostHog } from 'posthog-node';
import { isTracked } from '../events/outcome.js';
import { Identities } from '../events/identities.js';
import { apiErrorEvent, type EventIdentity } from '../events/telemetry-events.js';
import { UNMATCHED_ROUTE } from '../http/route-template.js';
import { currentJobRun } from '../jobs/job-run.js';
import { ErrorTrackingOutlet } from '../outlets/error-tracking.outlet.js';
import { EventsOutlet } from '../outlets/events.outlet.js';
import { SentryOutlet } from '../outlets/sentry.outlet.js';
import type { Redactor } from '../privacy/redact.js';
import { currentOperation } from '../request/request-context.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { EVENT_SINK, POSTHOG_CLIENT, REDACTOR, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { EventSink } from '../transport/event-sink.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import { categorizeError } from './error-categorizer.js';
import { describeError } from './error-details.js';
import { isIgnoredError } from './ignored-errors.js';

/** Where an error happened, as its `api_error` says. */
export interface ErrorSite {
  endpoint: string;
  method: string;
  statusCode: number;
}

/** How far an error goes besides its `api_error`, and how Sentry is to see it. */
export interface ErrorReach {
  /** Also to PostHog Error Tracking and Sentry. */
  tracked: boolean;
  handled: boolean;
  /** Sentry's mechanism type. */
  mechanism: string;
  /** Redaction for this error's texts; the module's otherwise. */
  redact?: Redactor;
}

/** What the app may say of an error it reports itself (`captureError`). */
export interface CaptureErrorInput {
  endpoint?: string;
  method?: string;
  statusCode?: number;
}

/** `captureError()`: the app caught the error and reported it. */
export const APP_CAPTURED = { handled: true, mechanism: 'manual.nestjs_posthog_telemetry' } as const;

/**
 * One error's report: its `$exception` and its Sentry event first, each by its
 * outlet, then its `api_error`, built once with the ids of the events that
 * were sent (the `$exception`'s once it is queued). The one place that does
 * so, for requests, jobs and the app's own `captureError`.
 */
@Injectable()
export class ErrorReporter {
  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(REDACTOR) private readonly redact: Redactor,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    private readonly identities: Identities,
    private readonly errorTracking: ErrorTrackingOutlet,
    private readonly sentry: SentryOutlet,
    private readonly events: EventsOutlet,
    private readonly failures: TelemetryFailures,
    @Inject(EVENT_SINK) private readonly sink: EventSink,
  ) {}

  report(identity: EventIdentity, error: unknown, site: ErrorSite, reach: ErrorReach): void {
    const category = categorizeError(error, this.customCategory, this.options.errorCategories);
    const details = describeError(error, this.options.tracebackLimit, reach.redact ?? this.redact);
    if (!reach.tracked) {
      this.events.send(apiErrorEvent(identity, { ...site, category, details }));
      return;
    }
    const correlation: Record<string, unknown> = {
      request_id: identity.requestId,
      endpoint: site.endpoint,
      method: site.method,
      status_code: site.statusCode,
      error_type: category,
      user_id: identity.userId,
      environment: identity.environment,
    };
    if (identity.sessionId !== undefined) correlation.$session_id = identity.sessionId;
    if (identity.traceId !== undefined) correlation.trace_id = identity.traceId;
    if (identity.spanId !== undefined) correlation.span_id = identity.spanId;
    if (identity.parentSpanId !== undefined) correlation.parent_span_id = identity.parentSpanId;
    if (identity.personless) correlation.$process_person_profile = false;
    // The api_error names its `$exception` and its Sentry event only once each is known to be queued: posthog-node
    // builds the `$exception` asynchronously, and may not (getters that throw, a `before_send` that drops it); Sentry
    // may drop its event (Dedupe, `beforeSend`, sampling). Built now, with the time of the error, it leaves once both
    // are known; flush and shutdown wait for it.
    const apiError = apiErrorEvent(identity, { ...site, category, details });
    let waiting = 2;
    const sendWhenKnown = () => {
      if (--waiting === 0) this.events.send(apiError);
    };
    this.errorTracking.send(error, identity.distinctId, correlation, (uuid) => {
      if (uuid !== undefined) apiError.properties.$exception_uuid = uuid;
      sendWhenKnown();
    });
    const sentry = this.sentry
      .capture(error, {
        tags: { request_id: String(identity.requestId), endpoint: site.endpoint, error_type: category },
        userId: identity.userId,
        handled: reach.handled,
        mechanism: reach.mechanism,
        redact: reach.redact,
        trace:
          identity.traceId === undefined
            ? undefined
            : { traceId: identity.traceId, spanId: identity.spanId, parentSpanId: identity.parentSpanId },
      })
      .then(
        (id) => {
          if (id !== undefined) apiError.properties.sentry_event_id = id;
        },
        () => undefined,
      )
      .then(sendWhenKnown);
    this.sink.hold?.(sentry);
  }

  /**
   * An error the app (`captureError`) or a job (jobs/) reports: under the running
   * operation's or job's identity, endpoint and method unless given, status 500 unless given.
   */
  reportCaptured(error: unknown, input: CaptureErrorInput, how: { handled: boolean; mechanism: string }): void {
    const identity = this.identities.current();
    if (!identity || isIgnoredError(error, this.options.ignoreErrors)) return;
    const at = currentOperation() ?? currentJobRun(this.posthog);
    const statusCode = input.statusCode ?? 500;
    const site = {
      endpoint: input.endpoint ?? at?.endpoint ?? UNMATCHED_ROUTE,
      method: input.method ?? at?.method ?? 'UNKNOWN',
      statusCode,
    };
    this.report(identity, error, site, { ...how, tracked: isTracked(statusCode, this.options.captureExceptionsMinStatus) });
  }

  /** The app's categories, with a failure logged once; the built-in rules then decide. */
  private readonly customCategory = this.options.categorizeError
    ? (error: unknown) => {
        try {
          return this.options.categorizeError?.(error);
        } catch (failure) {
          this.failures.report('categorizeError', failure);
          return undefined;
        }
      }
    : undefined;
}

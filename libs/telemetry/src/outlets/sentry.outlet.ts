import { Inject, Injectable, Optional } from '@nestjs/common';
import type { Redactor } from '../privacy/redact.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { REDACTOR, SENTRY } from '../telemetry.constants.js';
import { isCapturedBySentry, scrubSentryEvent, type SentryApi, type SentryScope } from './sentry-bridge.js';

/** What the Sentry event of an error says besides the error. */
export interface SentryReport {
  tags: Record<string, string>;
  userId: string;
  /** Whether code of the app's handled the error (Sentry's "unhandled" filters and priority rely on it). */
  handled: boolean;
  /** Sentry's mechanism type: what caught the error. */
  mechanism: string;
  /** Redaction for this event (the request's raw URL kept out too); the module's redaction otherwise. */
  redact?: Redactor;
  /** The operation's trace: the event's trace context when Sentry has none of its own (no active span). */
  trace?: { traceId: string; spanId?: string; parentSpanId?: string };
}

type TraceContextOf = { contexts?: { trace?: { trace_id?: string; span_id?: string; parent_span_id?: string }; [key: string]: unknown } };

/** Gives an event without a trace of Sentry's own (tracing off) the operation's, so it lines up with the PostHog events. */
function withTrace(trace: NonNullable<SentryReport['trace']>) {
  return <E>(event: E): E => {
    const traced = event as E & TraceContextOf;
    if (traced.contexts?.trace?.trace_id !== undefined) return event;
    const context: Record<string, string> = { trace_id: trace.traceId };
    if (trace.spanId !== undefined) context.span_id = trace.spanId;
    if (trace.parentSpanId !== undefined) context.parent_span_id = trace.parentSpanId;
    traced.contexts = { ...traced.contexts, trace: context };
    return event;
  };
}

/**
 * Sentry alongside PostHog: an error, once, on a scope of its own (tags of one
 * request never reach another's event), scrubbed of what Sentry attaches by
 * itself. It reads; the caller links the `api_error` with the event id it returns.
 */
@Injectable()
export class SentryOutlet {
  private readonly scrub = scrubSentryEvent(this.redact);

  constructor(
    @Inject(REDACTOR) private readonly redact: Redactor,
    private readonly failures: TelemetryFailures,
    @Optional() @Inject(SENTRY) private readonly sentry?: SentryApi,
  ) {}

  /**
   * The id of the Sentry event sent for this error; `undefined` without Sentry,
   * or when Sentry already captured this error object (it would send nothing more).
   */
  send(error: unknown, report: SentryReport): string | undefined {
    if (!this.sentry || isCapturedBySentry(error)) return undefined;
    const scrub = report.redact ? scrubSentryEvent(report.redact) : this.scrub;
    try {
      return this.sentry.captureException(error, {
        mechanism: { type: report.mechanism, handled: report.handled },
        captureContext: (scope: SentryScope) => {
          scope.setTags(report.tags);
          scope.setUser(report.userId === 'anonymous' ? null : { id: report.userId });
          scope.addEventProcessor(scrub);
          if (report.trace) scope.addEventProcessor(withTrace(report.trace));
          return scope;
        },
      });
    } catch (failure) {
      this.failures.report('Sentry captureException', failure);
      return undefined;
    }
  }
}

import { Inject, Injectable } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { ErrorReporter } from '../errors/error-reporter.js';
import { pathOf, UNMATCHED_ROUTE, withoutRawUrl } from '../http/route-template.js';
import { EventsOutlet } from '../outlets/events.outlet.js';
import type { Redactor } from '../privacy/redact.js';
import type { Operation } from '../request/operation.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { REDACTOR, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import { Identities } from './identities.js';
import { pathMatcher, type PathMatcher, type ResolvedTelemetryOptions } from '../telemetry.options.js';
import { decideLateError, decideOutcome, type ErrorOutcome, type OutcomeRules } from './outcome.js';
import { slowRequestEvent, type EventIdentity } from './telemetry-events.js';

/** Sentry's mechanism of the errors of requests: an unhandled one reached none of the app's filters. */
export const REQUEST_MECHANISM = 'auto.http.nestjs_posthog_telemetry';

/**
 * The end of an operation: the operation is finished, the outcome decided
 * (events/outcome.ts), and each event built once and sent: `api_request`,
 * `slow_request`, and the error's report (errors/error-reporter.ts). Never throws.
 */
@Injectable()
export class OperationRecorder {
  private readonly rules: OutcomeRules;
  private readonly staticPath: PathMatcher;

  constructor(
    @Inject(TELEMETRY_OPTIONS) options: ResolvedTelemetryOptions,
    @Inject(REDACTOR) private readonly redact: Redactor,
    private readonly identities: Identities,
    private readonly events: EventsOutlet,
    private readonly errors: ErrorReporter,
    private readonly failures: TelemetryFailures,
  ) {
    this.rules = {
      slowThresholdMs: options.slowThresholdMs,
      captureExceptionsMinStatus: options.captureExceptionsMinStatus,
      ignoreErrors: options.ignoreErrors,
    };
    this.staticPath = pathMatcher(options.staticPaths);
  }

  /** `status`: the response's; `sentWhole`: it was sent to its end (Node's `writableFinished`). */
  finish(operation: Operation, status: number, sentWhole: boolean): void {
    try {
      if (operation.skip || operation.carried || operation.ended) return;
      // A static file no route of the app answered (a static-files middleware, a missing asset's 404).
      if (operation.endpoint === undefined && operation.rawUrl !== undefined && this.staticPath(pathOf(operation.rawUrl))) return;
      const outcome = decideOutcome(operation.finish(status, sentWhole, performance.now()), this.rules);
      const identity = this.identities.of(operation);
      if (!identity) return;
      const { endpoint, method } = outcome;
      this.events.sendApiRequest(identity, {
        endpoint,
        method,
        statusCode: outcome.status,
        durationMs: outcome.durationMs,
        success: outcome.success,
      });
      if (outcome.slow) {
        this.events.send(
          slowRequestEvent(identity, { endpoint, method, durationMs: outcome.durationMs, thresholdMs: this.rules.slowThresholdMs }),
        );
      }
      if (outcome.error) this.report(identity, operation, outcome.error, endpoint, method, outcome.status);
    } catch (error) {
      this.failures.report('recordRequestEnd', error);
    }
  }

  /** An error noted after the operation ended: its own `api_error`, under the request's id and the status it was answered with. */
  lateError(operation: Operation, value: unknown): void {
    try {
      if (operation.skip || operation.carried) return;
      const error = decideLateError(value, this.rules);
      const identity = error && this.identities.of(operation);
      if (!error || !identity) return;
      this.report(identity, operation, error, operation.endpoint ?? UNMATCHED_ROUTE, operation.method, operation.endStatus);
    } catch (error) {
      this.failures.report('recordLateError', error);
    }
  }

  private report(
    identity: EventIdentity,
    operation: Operation,
    error: ErrorOutcome,
    endpoint: string,
    method: string,
    statusCode: number,
  ): void {
    this.errors.report(
      identity,
      error.value,
      { endpoint, method, statusCode },
      {
        tracked: error.tracked,
        handled: error.handled,
        mechanism: REQUEST_MECHANISM,
        redact: withoutRawUrl(this.redact, operation.rawUrl, endpoint),
      },
    );
  }
}

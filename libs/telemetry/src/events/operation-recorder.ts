import { Inject, Injectable } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { ErrorReporter } from '../errors/error-reporter.js';
import { withoutRawUrl } from '../http/route-template.js';
import { EventsOutlet } from '../outlets/events.outlet.js';
import type { Redactor } from '../privacy/redact.js';
import type { Operation } from '../request/operation.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { REDACTOR, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import { Identities } from './identities.js';
import { decideOutcome, type OutcomeRules } from './outcome.js';
import { apiRequestEvent, slowRequestEvent } from './telemetry-events.js';

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
  }

  /** `status`: the response's; `sentWhole`: it was sent to its end (Node's `writableFinished`). */
  finish(operation: Operation, status: number, sentWhole: boolean): void {
    try {
      if (operation.skip || operation.carried) return;
      const outcome = decideOutcome(operation.finish(status, sentWhole, performance.now()), this.rules);
      const identity = this.identities.of(operation);
      if (!identity) return;
      const { endpoint, method } = outcome;
      this.events.send(apiRequestEvent(identity, { endpoint, method, statusCode: outcome.status, durationMs: outcome.durationMs, success: outcome.success }));
      if (outcome.slow) {
        this.events.send(slowRequestEvent(identity, { endpoint, method, durationMs: outcome.durationMs, thresholdMs: this.rules.slowThresholdMs }));
      }
      const error = outcome.error;
      if (error) {
        this.errors.report(identity, error.value, { endpoint, method, statusCode: outcome.status }, {
          tracked: error.tracked,
          handled: error.handled,
          mechanism: REQUEST_MECHANISM,
          redact: withoutRawUrl(this.redact, operation.rawUrl, endpoint),
        });
      }
    } catch (error) {
      this.failures.report('recordRequestEnd', error);
    }
  }
}

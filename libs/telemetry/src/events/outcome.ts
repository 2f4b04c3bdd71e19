import { httpStatusOf } from '../errors/error-categorizer.js';
import { isIgnoredError, type IgnoreErrorRule } from '../errors/ignored-errors.js';
import { UNMATCHED_ROUTE } from '../http/route-template.js';
import type { FinishedOperation } from '../request/operation.js';

/** The settings the outcome depends on. */
export interface OutcomeRules {
  slowThresholdMs: number;
  /** Lowest status sent to Error Tracking and Sentry; `undefined`: none. */
  captureExceptionsMinStatus: number | undefined;
  ignoreErrors: IgnoreErrorRule[];
}

/** The error an operation reports, and how far. */
export interface ErrorOutcome {
  value: unknown;
  /** The status its report weighs as: the one sent, or for a failure after a success was sent, the error's own. */
  severity: number;
  /** Goes to PostHog Error Tracking and Sentry too (`captureExceptions`). */
  tracked: boolean;
  /** One of the app's exception filters answered it. */
  handled: boolean;
}

/** Which events a finished operation makes, and with what. */
export interface Outcome {
  endpoint: string;
  method: string;
  /** The status sent; 499 when the client went away before the response was sent (nginx's convention). */
  status: number;
  durationMs: number;
  success: boolean;
  slow: boolean;
  /** `api_error` (with `$exception` and Sentry when tracked), or none. */
  error: ErrorOutcome | undefined;
}

/** Whether an error weighing `status` goes to Error Tracking and Sentry. */
export function isTracked(status: number, minStatus: number | undefined): boolean {
  return minStatus !== undefined && status >= minStatus;
}

/**
 * The pure step between a finished operation and its events: no I/O, no
 * clock, no options object beyond the rules.
 */
export function decideOutcome(op: FinishedOperation, rules: OutcomeRules): Outcome {
  const status = op.sent ? op.status : 499;
  // An error no filter of the app's answered, on a response sent as a success: it failed after the headers went out.
  const failedMidway = op.hasError && !op.errorAnswered && status < 400;
  // An unknown route's 404 is not an application error: `api_request` records it. An error thrown
  // before any route was reached (a middleware) is, under the shared `(unmatched)` endpoint.
  const unknownRoute = op.endpoint === undefined && status === 404;
  let error: ErrorOutcome | undefined;
  if (op.hasError && !unknownRoute && !isIgnoredError(op.error, rules.ignoreErrors)) {
    const severity = failedMidway ? (httpStatusOf(op.error) ?? 500) : status;
    error = { value: op.error, severity, tracked: isTracked(severity, rules.captureExceptionsMinStatus), handled: op.errorAnswered };
  }
  return {
    endpoint: op.endpoint ?? UNMATCHED_ROUTE,
    method: op.method,
    status,
    durationMs: op.durationMs,
    success: status >= 200 && status < 300 && !failedMidway,
    slow: op.durationMs > rules.slowThresholdMs,
    error,
  };
}

/**
 * An error noted after its operation ended (the client went away first, a
 * handler that failed after its response was sent): it shaped no answer, so it
 * weighs as its own status (500 when it has none). `undefined`: not reported.
 */
export function decideLateError(error: unknown, rules: OutcomeRules): ErrorOutcome | undefined {
  if (isIgnoredError(error, rules.ignoreErrors)) return undefined;
  const severity = httpStatusOf(error) ?? 500;
  return { value: error, severity, tracked: isTracked(severity, rules.captureExceptionsMinStatus), handled: false };
}

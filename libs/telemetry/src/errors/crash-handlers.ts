/** The marks posthog-node and Sentry put on their `uncaughtException` listeners. */
interface MarkedListener {
  _errorHandler?: boolean;
  _posthogErrorHandler?: boolean;
}

/** Sentry's listener (its mark), not already taken for posthog-node's. */
const isSentrys = (listener: unknown): listener is MarkedListener =>
  typeof listener === 'function' &&
  (listener as MarkedListener)._errorHandler === true &&
  (listener as MarkedListener)._posthogErrorHandler !== true;

let coordinated = false;

/**
 * posthog-node's exception autocapture (`captureProcessErrors`) and Sentry's
 * handler of uncaught exceptions each end the process only when no other
 * handler is listening, and each takes the other for the app's own: after a
 * fatal error (or an unhandled rejection, which posthog-node turns into one
 * under Node's default `throw` mode) neither would end it, and the process
 * would live on. Sentry's listener is made to look like posthog-node's to
 * posthog-node, so posthog-node ends the process as Node would (the error
 * printed, exit code 1) once its clients shut down; Sentry still captures the
 * error, and the module's client flushes Sentry on the way out. A handler of
 * the app's own still keeps both from ending the process, as it keeps Node.
 * Once per process; a Sentry initialised later is seen as it registers.
 */
export function letPostHogEndFatalErrors(): void {
  if (coordinated) return;
  coordinated = true;
  for (const listener of process.listeners('uncaughtException')) if (isSentrys(listener)) listener._posthogErrorHandler = true;
  process.on('newListener', (event: string | symbol, listener: unknown) => {
    if (event === 'uncaughtException' && isSentrys(listener)) listener._posthogErrorHandler = true;
  });
}

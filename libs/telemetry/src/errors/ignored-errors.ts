/** Marks an error as not to be reported (no `api_error`, no `$exception`). */
const IGNORED = Symbol.for('nestjs-posthog-telemetry.ignored-error');

/** What `ignoreErrors` accepts: an error class, an error name, or a pattern tested on the message. */
export type IgnoreErrorRule = string | RegExp | (abstract new (...args: never[]) => unknown);

/**
 * Marks `error` so the module does not report it; its request still gets its
 * normal response and `api_request`. Returns the error: `throw ignoreError(new QuotaWarning())`.
 * An error can also mark itself with a `skipTelemetry = true` property.
 */
export function ignoreError<T>(error: T): T {
  if (error !== null && typeof error === 'object') {
    try {
      Object.defineProperty(error, IGNORED, { value: true });
    } catch {
      /* a frozen object cannot be marked; `ignoreErrors` still can match it */
    }
  }
  return error;
}

/** True when `error` was marked, marks itself, or matches one of `rules`. Never throws. */
export function isIgnoredError(error: unknown, rules: readonly IgnoreErrorRule[]): boolean {
  if (error === null || typeof error !== 'object') return false;
  try {
    const marked = error as { [IGNORED]?: boolean; skipTelemetry?: unknown; name?: unknown; message?: unknown };
    if (marked[IGNORED] === true || marked.skipTelemetry === true) return true;
    for (const rule of rules) {
      if (typeof rule === 'function') {
        if (error instanceof rule) return true;
      } else if (typeof rule === 'string') {
        if (marked.name === rule || error.constructor?.name === rule) return true;
      } else if (typeof marked.message === 'string') {
        rule.lastIndex = 0;
        if (rule.test(marked.message)) return true;
      }
    }
  } catch {
    /* an unreadable error is reported, not ignored */
  }
  return false;
}

import { redactSecrets } from '../privacy/redact.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';

/** The scope handed to `captureException`'s callback: a copy for that one event. */
export interface SentryScope {
  setTags(tags: Record<string, string>): unknown;
  setUser(user: { id: string } | null): unknown;
  addEventProcessor(processor: (event: SentryEvent) => SentryEvent | null): unknown;
}

/**
 * The few `@sentry/node` functions the module uses. `@sentry/node` is an
 * optional peer: its types never reach the app's compiler.
 */
export interface SentryApi {
  getClient(): unknown;
  init(options: Record<string, unknown>): unknown;
  captureException(
    error: unknown,
    hint: { mechanism?: { type: string; handled: boolean }; captureContext?: (scope: SentryScope) => SentryScope },
  ): string;
  flush(timeoutMs?: number): Promise<boolean>;
  /** Runs `callback` with tracing suppressed: no span, no trace headers, no breadcrumb for what it starts (the module's own requests). */
  suppressTracing?<T>(callback: () => T): T;
  /** Runs `callback` in a fork of the current isolation scope (scheduled jobs and event handlers, jobs/). */
  withIsolationScope?<T>(callback: (isolationScope: unknown) => T): T;
}

/** Runs a function that starts the module's own requests to PostHog. */
export type Untraced = <T>(send: () => T) => T;

/**
 * Keeps the module's own requests to PostHog out of the app's Sentry traces:
 * Sentry's `suppressTracing`, when the Sentry the module found has it.
 */
export function untracedBy(sentry: SentryApi | undefined): Untraced | undefined {
  const suppress = sentry?.suppressTracing;
  return typeof suppress === 'function' ? (send) => suppress(send) : undefined;
}

/** Sentry marks an error it captured, and captures it no more: another `captureException` would name an event never sent. */
export function isCapturedBySentry(error: unknown): boolean {
  try {
    return typeof error === 'object' && error !== null && (error as { __sentry_captured__?: unknown }).__sentry_captured__ === true;
  } catch {
    return false;
  }
}

/** The parts of a Sentry event that can carry secrets. */
interface SentryFrame {
  context_line?: string;
  pre_context?: string[];
  post_context?: string[];
  vars?: unknown;
}

export interface SentryEvent {
  message?: string;
  user?: { id?: string; ip_address?: unknown; email?: unknown; username?: unknown };
  exception?: { values?: Array<{ value?: string; stacktrace?: { frames?: SentryFrame[] } }> };
  request?: { url?: string; query_string?: unknown; cookies?: unknown; headers?: Record<string, string>; data?: unknown };
  breadcrumbs?: Array<{ message?: string; data?: Record<string, unknown> }>;
}

/**
 * Sentry, when the app has it: the app's own `Sentry.init()` if it ran,
 * otherwise one made here from `SENTRY_DSN` / `sentry.dsn`. Without
 * `@sentry/node` installed, or with neither, there is no Sentry and nothing is said.
 */
export async function connectSentry(options: ResolvedTelemetryOptions): Promise<SentryApi | undefined> {
  if (options.sentry === false || options.mode === 'off') return undefined;
  // Without a DSN only an app that already set Sentry up matters, and Sentry's SDKs keep their state on
  // `globalThis.__SENTRY__`: no need to load `@sentry/node` at start-up just to find it unused.
  if (!options.sentry.dsn && !(globalThis as { __SENTRY__?: unknown }).__SENTRY__) return undefined;
  let sentry: SentryApi;
  try {
    sentry = (await import('@sentry/node')) as unknown as SentryApi;
  } catch {
    return undefined;
  }
  if (sentry.getClient()) return sentry;
  if (!options.sentry.dsn) return undefined;
  sentry.init({ dsn: options.sentry.dsn, environment: options.environment, sendDefaultPii: false, ...options.sentry.init });
  return sentry;
}

const SAFE_HEADERS = new Set(['accept', 'accept-encoding', 'accept-language', 'content-type', 'content-length', 'host', 'user-agent', 'x-request-id']);

/**
 * Scrubs what Sentry attaches on its own (request data, breadcrumbs, source
 * lines and local variables of frames, the client's IP) and the messages: no
 * cookies, no query strings, only harmless headers, the user as an id, secrets redacted.
 */
export function scrubSentryEvent(redact: (text: string) => string = redactSecrets): (event: SentryEvent) => SentryEvent {
  const clean = <T>(value: T): T => (typeof value === 'string' ? (redact(value) as T) : value);
  return (event) => {
    if (event.message) event.message = clean(event.message);
    for (const exception of event.exception?.values ?? []) {
      exception.value = clean(exception.value);
      for (const frame of exception.stacktrace?.frames ?? []) {
        frame.context_line = clean(frame.context_line);
        if (frame.pre_context) frame.pre_context = frame.pre_context.map(clean);
        if (frame.post_context) frame.post_context = frame.post_context.map(clean);
        delete frame.vars;
      }
    }
    if (event.user) event.user = event.user.id === undefined ? undefined : { id: event.user.id };
    const request = event.request;
    if (request) {
      delete request.cookies;
      delete request.query_string;
      delete request.data;
      if (request.url) request.url = request.url.split(/[?#]/)[0];
      if (request.headers) {
        for (const name of Object.keys(request.headers)) if (!SAFE_HEADERS.has(name.toLowerCase())) delete request.headers[name];
      }
    }
    for (const crumb of event.breadcrumbs ?? []) {
      crumb.message = clean(crumb.message);
      if (crumb.data && typeof crumb.data.url === 'string') crumb.data.url = crumb.data.url.split(/[?#]/)[0];
    }
    return event;
  };
}

import { UNMATCHED_ROUTE, withoutRawUrl } from '../http/route-template.js';
import { redactSecrets, type Redactor } from '../privacy/redact.js';
import { scrubbedProperties, scrubbedValue, scrubFrame, withoutQuery, type SdkFrame } from '../privacy/sdk-scrub.js';
import { currentOperation } from '../request/request-context.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';

/** The scope handed to `captureException`'s callback: a copy for that one event. */
export interface SentryScope {
  setTags(tags: Record<string, string>): unknown;
  setUser(user: { id: string } | null): unknown;
  addEventProcessor(processor: (event: SentryEvent) => SentryEvent | null): unknown;
}

/** The hook and the queue of `@sentry/node`'s client the module reads to learn whether an event was sent. */
export interface SentryClient {
  on?(hook: 'beforeSendEvent', callback: (event: { event_id?: string }) => void): unknown;
  /** Sentry's queue of events being processed: each task settles with the id of the event sent, or `undefined` when none was. */
  _promiseBuffer?: { readonly $?: readonly PromiseLike<unknown>[] };
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
  /** Adds a processor every event of the process's Sentry goes through (global scope). */
  addEventProcessor?(processor: (event: SentryEvent) => SentryEvent | null): unknown;
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
export interface SentryEvent {
  type?: string;
  message?: string;
  logentry?: { message?: string; params?: unknown };
  transaction?: string;
  user?: { id?: string; ip_address?: unknown; email?: unknown; username?: unknown };
  exception?: { values?: { value?: string; stacktrace?: { frames?: SdkFrame[] } }[] };
  request?: { url?: string; query_string?: unknown; cookies?: unknown; headers?: Record<string, string>; data?: unknown; env?: unknown };
  breadcrumbs?: { message?: string; data?: Record<string, unknown> }[];
  extra?: Record<string, unknown>;
  tags?: Record<string, unknown>;
}

/** Sentry's name of the integration that reports unhandled rejections (and, by default, keeps the process alive). */
const UNHANDLED_REJECTION_INTEGRATION = 'OnUnhandledRejection';
interface Integration {
  name?: string;
}
type IntegrationsOption = Integration[] | ((defaults: Integration[]) => Integration[] | Integration) | undefined;

/**
 * The app's `integrations` (array or function, as `Sentry.init` takes them)
 * without Sentry's default `OnUnhandledRejection`: its listener would replace
 * Node's own handling (by default `--unhandled-rejections=throw`: the process
 * crashes) with a warning, or with its own exit (mode `strict`, which also
 * ignores the app's `uncaughtException` handlers). Without it Node decides, as
 * without Sentry; a crash still reaches Sentry through its `OnUncaughtException`
 * integration, which Node's `throw` mode goes through. One the app names itself is kept.
 */
export function withNodeRejectionHandling(own: IntegrationsOption): (defaults: Integration[]) => Integration[] {
  return (defaults) => {
    let chosen: Integration[];
    if (typeof own === 'function') {
      const result = own(defaults);
      chosen = Array.isArray(result) ? result : [result];
    } else if (Array.isArray(own)) {
      const names = new Set(own.map((integration) => integration?.name));
      chosen = [...defaults.filter((integration) => !names.has(integration?.name)), ...own];
    } else {
      chosen = defaults;
    }
    return chosen.filter((integration) => !(integration?.name === UNHANDLED_REJECTION_INTEGRATION && defaults.includes(integration)));
  };
}

/**
 * Sentry, when the app has it: the app's own `Sentry.init()` if it ran,
 * otherwise one made here from `SENTRY_DSN` / `sentry.dsn`. Without
 * `@sentry/node` installed, or with neither, there is no Sentry and nothing is said.
 *
 * The Sentry made here scrubs every event it sends (`scrubAnySentryEvent`, a
 * global event processor): the app's own captures and Sentry's reports of
 * uncaught errors too, not only the module's. An app's own Sentry is the app's:
 * the module scrubs the events it sends itself (`SentryOutlet`), and leaves the
 * rest of the app's configuration alone.
 */
export async function connectSentry(options: ResolvedTelemetryOptions, redact: Redactor = redactSecrets): Promise<SentryApi | undefined> {
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
  const { integrations, ...init } = options.sentry.init;
  sentry.init({
    dsn: options.sentry.dsn,
    environment: options.environment,
    sendDefaultPii: false,
    ...init,
    integrations: withNodeRejectionHandling(integrations as IntegrationsOption),
  });
  sentry.addEventProcessor?.(scrubAnySentryEvent(redact));
  return sentry;
}

const SAFE_HEADERS = new Set([
  'accept',
  'accept-encoding',
  'accept-language',
  'content-type',
  'content-length',
  'host',
  'user-agent',
  'x-request-id',
]);
/** Breadcrumb data Sentry fills with a URL's query string or fragment. */
const QUERY_KEYS = ['url.query', 'http.query', 'url.fragment', 'http.fragment'];
/** `GET /items/42`: the transaction name Sentry gives a request before (or without) a route. */
const HTTP_TRANSACTION = /^([A-Z]+) (\/\S*)$/;

/** What the scrub of one event knows besides the redaction. */
/** The tags the module sets on its reports (outlets/sentry.outlet.ts): a request id, a route template, a category. */
const MODULE_TAGS = new Set(['request_id', 'endpoint', 'error_type']);

export interface SentryScrubContext {
  /** The route template of the request the event is about (`/items/:id`): it replaces the raw path. */
  endpoint?: string;
  /** Redaction of frames' paths and source lines; the event's otherwise. */
  frames?: Redactor;
}

/** `url` with its path replaced by `endpoint` (a route template) when it is one, and no query string. */
function templatedUrl(url: string, endpoint: string | undefined): string {
  const path = withoutQuery(url);
  if (endpoint === undefined || !(endpoint.startsWith('/') || endpoint === UNMATCHED_ROUTE)) return path;
  const origin = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(path)?.[0] ?? '';
  return origin + (endpoint.startsWith('/') ? endpoint : `/${endpoint}`);
}

/**
 * Scrubs what Sentry attaches on its own, and the messages: no cookies, body,
 * query strings, only harmless headers, the user as an id, the request's path
 * as its route template (`request.url`, `transaction`), breadcrumbs' URLs
 * without query and their data (console arguments, …) redacted and bounded,
 * `extra` (`__serialized__` of a thrown object) redacted and bounded, frames'
 * paths and source lines redacted, their local variables dropped, secrets
 * redacted everywhere. The event is Sentry's own copy; values of the app's it
 * holds (console arguments, `extra`) are replaced by scrubbed copies, never
 * changed. A failure drops the event rather than let it go unscrubbed.
 */
export function scrubSentryEvent(
  redact: Redactor = redactSecrets,
  context: SentryScrubContext = {},
): (event: SentryEvent) => SentryEvent | null {
  const frames = context.frames ?? redact;
  const clean = <T>(value: T): T => (typeof value === 'string' ? (redact(value) as T) : value);
  return (event) => {
    try {
      if (event.message !== undefined) event.message = clean(event.message);
      if (event.logentry) event.logentry = { message: clean(event.logentry.message), params: scrubbedValue(event.logentry.params, redact) };
      for (const exception of event.exception?.values ?? []) {
        exception.value = clean(exception.value);
        for (const frame of exception.stacktrace?.frames ?? []) scrubFrame(frame, frames);
      }
      if (event.user) event.user = event.user.id === undefined ? undefined : { id: event.user.id };
      const request = event.request;
      if (request) {
        delete request.cookies;
        delete request.query_string;
        delete request.data;
        delete request.env;
        if (typeof request.url === 'string') request.url = redact(templatedUrl(request.url, context.endpoint));
        const sent = request.headers;
        if (sent) {
          const headers: Record<string, string> = {};
          for (const name of Object.keys(sent)) if (SAFE_HEADERS.has(name.toLowerCase())) headers[name] = clean(sent[name]);
          request.headers = headers;
        }
      }
      if (typeof event.transaction === 'string') {
        const http = HTTP_TRANSACTION.exec(withoutQuery(event.transaction));
        event.transaction =
          http && context.endpoint !== undefined ? `${http[1]} ${context.endpoint}` : redact(withoutQuery(event.transaction));
      }
      if (event.breadcrumbs) event.breadcrumbs = event.breadcrumbs.map((crumb) => scrubBreadcrumb(crumb, redact));
      if (event.extra) event.extra = scrubbedProperties(event.extra, redact);
      if (event.tags) {
        // The module's own tags (request id, route template, category) are clean already, and an id may look random.
        const tags = event.tags;
        event.tags = scrubbedProperties(tags, redact, (key) => MODULE_TAGS.has(key) && typeof tags[key] === 'string');
      }
      return event;
    } catch {
      return null;
    }
  };
}

/** A scrubbed copy of a breadcrumb: Sentry's scope keeps the original, and a console breadcrumb holds the app's own arguments. */
function scrubBreadcrumb(
  crumb: { message?: string; data?: Record<string, unknown> },
  redact: Redactor,
): { message?: string; data?: Record<string, unknown> } {
  if (typeof crumb !== 'object' || crumb === null) return crumb;
  const copy = { ...crumb };
  if (typeof copy.message === 'string') copy.message = redact(copy.message);
  if (copy.data && typeof copy.data === 'object') {
    const data: Record<string, unknown> = { ...copy.data };
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- removes fixed keys (QUERY_KEYS) from a copy of the breadcrumb's data
    for (const key of QUERY_KEYS) delete data[key];
    if (typeof data.url === 'string') data.url = withoutQuery(data.url);
    copy.data = scrubbedProperties(data, redact);
  }
  return copy;
}

/**
 * The scrub of every event of the Sentry the module made (a global event
 * processor): inside a request, its raw URL replaced by its route template, as
 * in the module's own events; outside, the module's redaction.
 */
export function scrubAnySentryEvent(redact: Redactor): (event: SentryEvent) => SentryEvent | null {
  return (event) => {
    const operation = currentOperation();
    if (!operation) return scrubSentryEvent(redact)(event);
    const endpoint = operation.endpoint ?? UNMATCHED_ROUTE;
    return scrubSentryEvent(withoutRawUrl(redact, operation.rawUrl, endpoint), { endpoint, frames: redact })(event);
  };
}

import { Logger } from '@nestjs/common';
import type { PostHogOptions } from 'posthog-node';
import type { ErrorCategoryRule } from './errors/error-categorizer.js';
import type { IgnoreErrorRule } from './errors/ignored-errors.js';
import type { RedactOption } from './privacy/redact.js';
import type { TelemetryEvent } from './events/telemetry-events.js';
import { FRONTEND_IDENTITY_POLICIES, type FrontendIdentityPolicy } from './request/frontend-identity.js';

/** The user an event belongs to, as returned by `resolveUser`. */
export interface TelemetryUser {
  id: string;
  email?: string;
}

/**
 * A custom categorisation rule. Return a category name to decide, or
 * `undefined` to let the next rule (and finally the built-in ones) decide.
 */
export type CategorizeError = (error: unknown) => string | undefined | null;

export interface TelemetryModuleOptions {
  /** PostHog project API key. Env: `POSTHOG_API_KEY`. Without one the module runs in local mode: events are logged, nothing is sent. */
  apiKey?: string;
  /** PostHog host. Env: `POSTHOG_HOST`. Default `https://us.i.posthog.com`. */
  host?: string;
  /** Sent as `environment` on every event. Env: `ENVIRONMENT`, then `NODE_ENV`. Default `development`. */
  environment?: string;
  /** `false` turns every event off (request ids are still returned). Default `true`. */
  enabled?: boolean;
  /** Requests slower than this emit `slow_request`. Env: `SLOW_THRESHOLD` (seconds). Default 5000 ms. */
  slowThresholdMs?: number;
  /** Email domains of your own staff. Env: `POSTHOG_INTERNAL_DOMAINS` (comma-separated). */
  internalDomains?: string[];
  /** What happens to requests of internal users: `drop` (default) sends nothing, `tag` adds `is_internal_user: true`. */
  internalUsers?: 'drop' | 'tag';
  /**
   * Paths with no events, whether a route answers them or not: exact paths, path prefixes ending in `/*`,
   * or regular expressions, matched on the path as requested (no query string).
   * @default DEFAULT_EXCLUDE_PATHS (health and readiness probes)
   */
  excludePaths?: (string | RegExp)[];
  /**
   * Paths of static files: no events when no route of the app answered them (a static-files middleware,
   * a 404 for a missing asset). A route of the app is always recorded, whatever its path ends with
   * (`GET /reports/:name` asked for `/reports/q3.pdf`); mark one with `@SkipTelemetry()` to leave it out.
   * @default DEFAULT_STATIC_PATHS (favicon, robots.txt, and files with a static file's extension)
   */
  staticPaths?: (string | RegExp)[];
  /**
   * What the frontend's `X-POSTHOG-DISTINCT-ID` may do for requests no user is known for. `anonymous`: only an
   * id in the shape posthog-js gives anonymous visitors is taken, and its events are personless (any client can
   * send any value: an identified person's id cannot be claimed); `trusted`: any id, with person processing (a
   * frontend reached only through your own authenticating proxy); `ignored`. An authenticated user always wins.
   * Env: `POSTHOG_FRONTEND_IDENTITY`.
   * @default 'anonymous'
   */
  frontendIdentity?: FrontendIdentityPolicy;
  /**
   * Also record CORS preflights (`OPTIONS` with `Access-Control-Request-Method`, answered by `enableCors`):
   * one per cross-origin call that sends custom headers, such as posthog-js's tracing headers.
   * @default false
   */
  capturePreflights?: boolean;
  /** Header that carries the correlation id, in and out. Default `x-request-id`. */
  requestIdHeader?: string;
  /** Finds the user of a request (Express request or Fastify request). Default reads `request.user` (`id`, `sub` or `userId`, and `email`). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the app's callback types its parameter as its adapter's request (Express, Fastify); `unknown` would refuse it
  resolveUser?: (request: any) => TelemetryUser | null | undefined;
  /** Longest traceback sent, in characters. Default 5000. */
  tracebackLimit?: number;
  /** Longest time `app.close()` waits for queued events to be delivered. Default 5000 ms. */
  shutdownTimeoutMs?: number;
  /** Custom error categories, consulted before the built-in ones. */
  categorizeError?: CategorizeError;
  /** Category rules, after `categorizeError` and before the built-in ones: `{ category: 'rate_limited', match: 'rate_limit_exceeded' }`. */
  errorCategories?: ErrorCategoryRule[];
  /** Also redact email addresses from messages, tracebacks and `capture()` strings. Default `false`. */
  redactEmails?: boolean;
  /**
   * Also send server errors to PostHog Error Tracking (`$exception`, through posthog-node's `captureException`).
   * Default `true`: 5xx and non-HTTP errors. `{ minStatus: 400 }` includes 4xx; `false` turns it off.
   */
  captureExceptions?: boolean | { minStatus?: number };
  /**
   * Sentry alongside PostHog, when `@sentry/node` is installed: the app's own `Sentry.init()` is used if it ran,
   * otherwise the module initialises it from `dsn` (env `SENTRY_DSN`) with `init` as extra options. `false`: never.
   * Server errors (as `captureExceptions` decides) go to Sentry once, tagged; `api_error` carries `sentry_event_id`.
   */
  sentry?: false | { dsn?: string; init?: Record<string, unknown> };
  /**
   * Also send errors outside requests (`uncaughtException`, `unhandledRejection`) to PostHog Error Tracking,
   * through posthog-node's own exception autocapture, which keeps the process's normal crash behaviour. Default `false`.
   */
  captureProcessErrors?: boolean;
  /**
   * Report failures of scheduled jobs (`@Cron`, `@Interval`, `@Timeout` of `@nestjs/schedule`) and event handlers
   * (`@OnEvent` of `@nestjs/event-emitter`): an `api_error` with `endpoint` `cron:<name>`, `interval:<name>`,
   * `timeout:<name>` or `event:<event>`, its `$exception` and Sentry event. The job's error then goes on as before.
   * @default true
   */
  captureJobErrors?: boolean;
  /**
   * GraphQL (`@nestjs/graphql` with Apollo or Mercurius): one `api_request` per operation, `endpoint`
   * `graphql:<query|mutation|subscription> <OperationName>` (an anonymous one named by its first field), instead of
   * one for the HTTP request carrying them; resolver errors reported once. docs/transports.md, "GraphQL".
   * @default true
   */
  captureGraphql?: boolean;
  /**
   * Microservices (`@nestjs/microservices`): one `api_request` per message or event a `@MessagePattern` or
   * `@EventPattern` handler takes (`endpoint` `rpc:<pattern>`, `method` `RPC` or `EVENT`), its error reported once,
   * the caller's `request_id` continued from the message. The answer the caller gets is never changed.
   * @default true
   */
  captureMicroservices?: boolean;
  /**
   * Clients (`ClientProxy.send`/`emit`) called during an operation send its `request_id` (and session and distinct
   * id) along: NATS headers, or the packet's `metadata` over TCP and Redis; never over a key the app set.
   * @default true
   */
  propagateToMicroservices?: boolean;
  /**
   * WebSocket gateways (`@nestjs/websockets`, socket.io or `ws`): one `api_request` per `@SubscribeMessage` handler
   * call, `endpoint` `ws:<event>`, `method` `WS`; its errors reported once (`api_error`, `$exception`, Sentry), the
   * gateway's answers unchanged. docs/transports.md, "WebSockets".
   * @default true
   */
  captureWebSockets?: boolean;
  /**
   * Also record socket.io's own HTTP requests (long-polling, and the first request of an upgrade), recognised by
   * engine.io's `EIO` and `transport` query parameters whatever socket.io's `path` is: several per idle client and minute.
   * @default false
   */
  captureSocketIoPolling?: boolean;
  /** Errors not to report (no `api_error`, no `$exception`): classes, names, or patterns tested on the message. */
  ignoreErrors?: IgnoreErrorRule[];
  /** More redaction, after the built-in one, of messages, tracebacks and `capture()` strings: patterns (matches become `[REDACTED]`) or a function. */
  redact?: RedactOption;
  /** Last look at each event before it is queued: return it (changed or not), or `null` to drop it. */
  beforeSend?: (event: TelemetryEvent) => TelemetryEvent | null | undefined;
  /**
   * Passed to the posthog-node client (`POSTHOG_CLIENT`). `flushAt`, `flushInterval`,
   * `maxQueueSize`, `requestTimeout`, `fetchRetryCount`, `fetchRetryDelay` and
   * `disableCompression` also govern the module's own event sender. `disabled: true` turns the whole module's
   * sending off, as `enabled: false` does.
   */
  posthogOptions?: Partial<PostHogOptions>;
  /**
   * Most bytes (serialised JSON) of events waiting to be sent, the module's queue and posthog-node's together:
   * during an outage the oldest events go past it (or past `posthogOptions.maxQueueSize` events), so memory
   * stays bounded whatever PostHog does, `$exception`s with their stack frames included.
   * @default 8388608 (8 MiB)
   */
  maxQueueBytes?: number;
  /**
   * Outgoing HTTP calls made while handling an operation (`fetch`/undici, `node:http`/`https`, so axios and
   * `@nestjs/axios`) carry its correlation id (in `requestIdHeader`) and a W3C `traceparent` (its trace id,
   * its span as parent): the next service, running the module, continues the same journey and trace. A header
   * the app set itself is never replaced; the module's own calls to PostHog and Sentry never carry them. `false`: none.
   * @default true
   */
  propagate?: boolean;
  /**
   * The hosts outgoing calls carry the ids to: host names (`api.internal`), `*.example.com` (the domain and its
   * subdomains), `host:port`, URL prefixes (`https://api.example.com/v2/`), regular expressions tested on the
   * whole URL, or a function of the URL (`true`: carry them). Keeps ids and trace headers from third parties.
   * @default every host
   */
  propagateTo?: (string | RegExp)[] | ((url: string) => boolean);
}

/**
 * Health and readiness probes: no events by default, answered by a route or
 * not. They are matched wherever they sit (`/health`, `/api/health`,
 * `/api/v1/readyz`, behind a global prefix or a version): `health` with
 * anything below it, the other names as the last segment of the path.
 */
export const DEFAULT_EXCLUDE_PATHS: readonly (string | RegExp)[] = [
  /\/health(?:\/|$)/i,
  /\/(?:healthz|healthcheck|livez|readyz|ready|live|ping)\/?$/i,
];

/**
 * Static files: no events by default when no route of the app answered them
 * (see `staticPaths`). A route's parameter may end in `.js` or `.png`: the
 * route is recorded all the same.
 */
export const DEFAULT_STATIC_PATHS: readonly (string | RegExp)[] = [
  '/favicon.ico',
  '/robots.txt',
  /\.(?:css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|eot|txt|html?)$/i,
];

export const DEFAULT_HOST = 'https://us.i.posthog.com';

/**
 * What the module does, decided once: `off` (`enabled: false`: no events, request ids still
 * returned), `local` (no API key: each event is logged, nothing leaves the process), `posthog`.
 */
export type TelemetryMode = 'off' | 'local' | 'posthog';

/** The module's own sender's settings (transport/posthog-batch-sender.ts), from `posthogOptions`. */
export interface SenderSettings {
  /** Send as soon as this many events wait. */
  flushAt: number;
  /** Send what waits at least this often. */
  flushIntervalMs: number;
  /** Most events kept waiting; past it the oldest are dropped. */
  maxQueueSize: number;
  /** Most bytes of JSON waiting, shared with posthog-node's queue (`maxQueueBytes`). */
  maxQueueBytes: number;
  /** Most events in one request. */
  maxBatchSize: number;
  requestTimeoutMs: number;
  /** Tries after the first one failed (network error, timeout, 5xx, 408, 429). */
  retryCount: number;
  /** First wait between tries; doubles each time. */
  retryDelayMs: number;
  compression: boolean;
}

/** Options with every default applied: what the rest of the module reads. */
export interface ResolvedTelemetryOptions {
  mode: TelemetryMode;
  sender: SenderSettings;
  apiKey?: string;
  host: string;
  environment: string;
  enabled: boolean;
  slowThresholdMs: number;
  internalDomains: string[];
  internalUsers: 'drop' | 'tag';
  excludePaths: (string | RegExp)[];
  staticPaths: (string | RegExp)[];
  frontendIdentity: FrontendIdentityPolicy;
  capturePreflights: boolean;
  requestIdHeader: string;
  resolveUser: (request: unknown) => TelemetryUser | null | undefined;
  tracebackLimit: number;
  shutdownTimeoutMs: number;
  categorizeError?: CategorizeError;
  errorCategories: ErrorCategoryRule[];
  redactEmails: boolean;
  captureProcessErrors: boolean;
  captureJobErrors: boolean;
  captureGraphql: boolean;
  captureMicroservices: boolean;
  propagateToMicroservices: boolean;
  captureWebSockets: boolean;
  captureSocketIoPolling: boolean;
  sentry: false | { dsn?: string; init: Record<string, unknown> };
  /** Lowest status sent to PostHog Error Tracking and Sentry; `undefined`: not at all. */
  captureExceptionsMinStatus?: number;
  ignoreErrors: IgnoreErrorRule[];
  redact?: RedactOption;
  beforeSend?: (event: TelemetryEvent) => TelemetryEvent | null | undefined;
  posthogOptions: Partial<PostHogOptions>;
  propagate: boolean;
  /** `undefined`: every host. */
  propagateTo?: (string | RegExp)[] | ((url: string) => boolean);
}

const MAX_USER_FIELD = 200;
const logger = new Logger('Telemetry');

/** Default `resolveUser`: `request.user` as set by Passport and most auth guards. */
export function defaultResolveUser(request: unknown): TelemetryUser | undefined {
  const user = (request as { user?: unknown } | null | undefined)?.user;
  if (!user || typeof user !== 'object') return undefined;
  const fields = user as { id?: unknown; sub?: unknown; userId?: unknown; email?: unknown };
  const id = fields.id ?? fields.sub ?? fields.userId;
  if (id === undefined || id === null || id === '') return undefined;
  const email = typeof fields.email === 'string' ? fields.email.slice(0, MAX_USER_FIELD) : undefined;
  return { id: String(id).slice(0, MAX_USER_FIELD), email };
}

/** `value` as a non-negative number; anything else warns (quoting what was written) and gives `fallback`. */
function positiveNumber(name: string, value: unknown, fallback: number, scale = 1): number {
  if (value === undefined) return fallback;
  const n = (typeof value === 'number' ? value : Number(value)) * scale;
  if (Number.isFinite(n) && n >= 0) return n;
  logger.warn(`${name}=${String(value).slice(0, 50)} is not a non-negative number; using ${fallback}.`);
  return fallback;
}

function blankToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** Defaults of the module's own sender, each overridable through `posthogOptions`. */
const SENDER_DEFAULTS = {
  flushAt: 100,
  flushInterval: 1000,
  maxQueueSize: 10_000,
  requestTimeout: 10_000,
  fetchRetryCount: 3,
  fetchRetryDelay: 1000,
};

/** Default `maxQueueBytes`. */
export const DEFAULT_MAX_QUEUE_BYTES = 8 * 2 ** 20;

function senderSettings(posthogOptions: Partial<PostHogOptions>, maxQueueBytes: number): SenderSettings {
  const p = { ...SENDER_DEFAULTS, ...posthogOptions };
  return {
    flushAt: Math.max(1, p.flushAt),
    flushIntervalMs: p.flushInterval,
    maxQueueSize: Math.max(1, p.maxQueueSize),
    maxQueueBytes: Math.max(1, maxQueueBytes),
    maxBatchSize: Math.max(p.flushAt, 1000),
    requestTimeoutMs: p.requestTimeout,
    retryCount: p.fetchRetryCount,
    retryDelayMs: p.fetchRetryDelay,
    compression: p.disableCompression !== true,
  };
}

/** Applies environment variables, then defaults, to what the user passed. */
export function resolveTelemetryOptions(
  options: TelemetryModuleOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedTelemetryOptions {
  const slowFromEnv = blankToUndefined(env.SLOW_THRESHOLD);
  const domains = options.internalDomains ?? blankToUndefined(env.POSTHOG_INTERNAL_DOMAINS)?.split(',') ?? [];
  const apiKey = blankToUndefined(options.apiKey ?? env.POSTHOG_API_KEY);
  const enabled = options.enabled ?? true;
  const posthogOptions = { ...(options.posthogOptions ?? {}) };
  return {
    mode: !enabled || posthogOptions.disabled === true ? 'off' : apiKey === undefined ? 'local' : 'posthog',
    sender: senderSettings(posthogOptions, positiveNumber('maxQueueBytes', options.maxQueueBytes, DEFAULT_MAX_QUEUE_BYTES)),
    apiKey,
    host: (blankToUndefined(options.host ?? env.POSTHOG_HOST) ?? DEFAULT_HOST).replace(/\/+$/, ''),
    environment:
      blankToUndefined(options.environment) ?? blankToUndefined(env.ENVIRONMENT) ?? blankToUndefined(env.NODE_ENV) ?? 'development',
    enabled,
    slowThresholdMs:
      options.slowThresholdMs !== undefined
        ? positiveNumber('slowThresholdMs', options.slowThresholdMs, 5000)
        : positiveNumber('SLOW_THRESHOLD', slowFromEnv, 5000, 1000),
    internalDomains: domains.map((d) => d.trim().toLowerCase().replace(/^@/, '')).filter(Boolean),
    internalUsers: options.internalUsers ?? 'drop',
    excludePaths: [...(options.excludePaths ?? DEFAULT_EXCLUDE_PATHS)],
    staticPaths: [...(options.staticPaths ?? DEFAULT_STATIC_PATHS)],
    frontendIdentity: frontendIdentityPolicy(options.frontendIdentity ?? blankToUndefined(env.POSTHOG_FRONTEND_IDENTITY)),
    capturePreflights: options.capturePreflights ?? false,
    requestIdHeader: (options.requestIdHeader ?? 'x-request-id').toLowerCase(),
    resolveUser: options.resolveUser ?? defaultResolveUser,
    tracebackLimit: positiveNumber('tracebackLimit', options.tracebackLimit, 5000),
    shutdownTimeoutMs: positiveNumber('shutdownTimeoutMs', options.shutdownTimeoutMs, 5000),
    categorizeError: options.categorizeError,
    errorCategories: [...(options.errorCategories ?? [])],
    redactEmails: options.redactEmails ?? false,
    captureProcessErrors: options.captureProcessErrors ?? false,
    captureJobErrors: options.captureJobErrors ?? true,
    captureGraphql: options.captureGraphql ?? true,
    captureMicroservices: options.captureMicroservices ?? true,
    propagateToMicroservices: options.propagateToMicroservices ?? true,
    captureWebSockets: options.captureWebSockets ?? true,
    captureSocketIoPolling: options.captureSocketIoPolling ?? false,
    captureExceptionsMinStatus:
      options.captureExceptions === false
        ? undefined
        : typeof options.captureExceptions === 'object'
          ? (options.captureExceptions.minStatus ?? 500)
          : 500,
    ignoreErrors: [...(options.ignoreErrors ?? [])],
    sentry:
      options.sentry === false
        ? false
        : { dsn: blankToUndefined(options.sentry?.dsn ?? env.SENTRY_DSN), init: { ...(options.sentry?.init ?? {}) } },
    redact: options.redact,
    beforeSend: options.beforeSend,
    posthogOptions,
    propagate: options.propagate ?? true,
    propagateTo: Array.isArray(options.propagateTo) ? [...options.propagateTo] : options.propagateTo,
  };
}

/** Tells whether a path (no query string) matches one of the rules; made once, asked for every request. */
export type PathMatcher = (path: string) => boolean;

/**
 * `rules` as one test: exact paths in a set, `/*` prefixes, and the regular expressions of the same flags
 * joined into one (one match per request instead of one per rule). `g` and `y` are dropped: they would make
 * a shared expression's answer depend on the previous one.
 */
export function pathMatcher(rules: readonly (string | RegExp)[]): PathMatcher {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const byFlags = new Map<string, string[]>();
  const alone: RegExp[] = [];
  for (const rule of rules) {
    if (typeof rule === 'string') {
      if (rule.endsWith('/*')) prefixes.push(rule.slice(0, -2));
      else exact.add(rule);
      continue;
    }
    const flags = rule.flags.replace(/[gy]/g, '');
    // Numbered or named back-references would point elsewhere once joined.
    if (/\\[1-9]|\\k<|\(\?</.test(rule.source)) alone.push(new RegExp(rule.source, flags));
    else {
      const sources = byFlags.get(flags);
      if (sources) sources.push(rule.source);
      else byFlags.set(flags, [rule.source]);
    }
  }
  const patterns = [...alone, ...[...byFlags].map(([flags, sources]) => new RegExp(sources.map((s) => `(?:${s})`).join('|'), flags))];
  return (path) => {
    if (exact.has(path)) return true;
    for (const base of prefixes) if (path === base || path.startsWith(base + '/')) return true;
    for (const pattern of patterns) if (pattern.test(path)) return true;
    return false;
  };
}

/** The `frontendIdentity` policy; an unknown value falls back to the safe default, with a warning. */
function frontendIdentityPolicy(value: string | undefined): FrontendIdentityPolicy {
  if (value === undefined) return 'anonymous';
  const policy = value.trim().toLowerCase() as FrontendIdentityPolicy;
  if (FRONTEND_IDENTITY_POLICIES.includes(policy)) return policy;
  logger.warn(`frontendIdentity: unknown value "${value}", using "anonymous"`);
  return 'anonymous';
}

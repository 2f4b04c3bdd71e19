import { PostHog } from 'posthog-node';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { stampRequestIdentity } from '../request/posthog-context.js';
import type { Redactor } from '../privacy/redact.js';
import { Operation } from '../request/operation.js';
import { OPERATION } from '../request/request-context.js';
import { UNMATCHED_ROUTE, withoutRawUrl } from '../http/route-template.js';
import { untracedBy, type SentryApi, type Untraced } from './sentry-bridge.js';
import { PostHogQueueAccount } from '../transport/posthog-node-queue.js';
import { QueueBudget } from '../transport/queue-budget.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';

type PostHogEvent = { event: string; properties?: Record<string, any> };
type BeforeSend = (event: any) => any;

/**
 * Redacts what posthog-node attaches to an `$exception` on its own: the
 * messages in `$exception_list` and the source lines around each stack frame.
 */
export function scrubException(redact: (text: string) => string): BeforeSend {
  return (event: PostHogEvent) => {
    const list = event?.event === '$exception' ? event.properties?.$exception_list : undefined;
    if (!Array.isArray(list)) return event;
    // Inside a request, its raw URL (ids, query string) is also kept out, as in its api_error.
    const operation = event.properties?.[OPERATION as unknown as string];
    const scrub = operation instanceof Operation ? withoutRawUrl(redact, operation.rawUrl, operation.endpoint ?? UNMATCHED_ROUTE) : redact;
    const clean = (value: unknown) => (typeof value === 'string' ? scrub(value) : value);
    for (const exception of list) {
      exception.value = clean(exception.value);
      for (const frame of exception.stacktrace?.frames ?? []) {
        frame.context_line = clean(frame.context_line);
        if (Array.isArray(frame.pre_context)) frame.pre_context = frame.pre_context.map(clean);
        if (Array.isArray(frame.post_context)) frame.post_context = frame.post_context.map(clean);
      }
    }
    return event;
  };
}

type ClientOptions = NonNullable<ConstructorParameters<typeof PostHog>[1]>;
type Fetch = NonNullable<ClientOptions['fetch']>;
type FetchOptions = Parameters<Fetch>[1];
type FetchResponse = Awaited<ReturnType<Fetch>>;

/**
 * posthog-node's requests over node:http(s), with what it reads of an answer
 * (status, headers, text, json). Used when the app has Sentry: under
 * `suppressTracing`, Sentry's `http` instrumentation leaves a request alone,
 * while its `fetch` instrumentation (11.x, tracing on) still adds trace headers.
 */
async function fetchOverHttp(url: string, init: FetchOptions): Promise<FetchResponse> {
  const body = init.body === undefined || typeof init.body === 'string' || init.body instanceof Uint8Array ? init.body : new Uint8Array(await init.body.arrayBuffer());
  const target = new URL(url);
  return new Promise<FetchResponse>((resolve, reject) => {
    const request = (target.protocol === 'https:' ? https : http).request(target, { method: init.method, headers: init.headers, signal: init.signal }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const header = (name: string) => {
          const value = response.headers[name.toLowerCase()];
          return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
        };
        resolve({ status: response.statusCode ?? 0, headers: { get: header }, text: async () => text, json: async () => JSON.parse(text) });
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** posthog-node skips an error carrying this mark (`ErrorTracking.isPreviouslyCapturedError`). */
function isMarkedCaptured(error: unknown): boolean {
  try {
    return typeof error === 'object' && error !== null && (error as { __posthog_previously_captured_error?: unknown }).__posthog_previously_captured_error === true;
  } catch {
    return false;
  }
}

/**
 * posthog-node's client as the module shares it, with two differences:
 *
 * - one error object goes to Error Tracking once, whoever asks first (the app's
 *   own `captureException`, or the module for a failed request), and the
 *   module learns the uuid of the `$exception` that was sent, to link its `api_error`;
 * - its requests to PostHog run outside the request that happened to trigger
 *   them (the context at construction) and, once the module found the app's
 *   Sentry (`untraced`), under Sentry's `suppressTracing`, over node:http
 *   unless the app gave its own `fetch`: no span, breadcrumb or trace header of the app's.
 */
export class SharedPostHog extends PostHog {
  /** Sentry's `suppressTracing`, set by the module when the app has Sentry. */
  untraced?: Untraced;
  /** Errors sent to Error Tracking, with the uuid of their `$exception` (`null`: not known). */
  private readonly sentErrors = new WeakMap<object, string | null>();
  /** The byte budget its queue shares with the module's sender (`maxQueueBytes`), once `shareQueueBudget` ran. */
  queueBudget?: QueueBudget;
  private queueAccount?: PostHogQueueAccount;

  constructor(apiKey: string, options: ClientOptions = {}) {
    const outside = AsyncLocalStorage.snapshot();
    const own = options.fetch;
    let self: SharedPostHog | undefined;
    const send: Fetch = (url, init) => {
      const untraced = self?.untraced;
      if (untraced) return untraced(() => (own ?? fetchOverHttp)(url, init));
      return own ? own(url, init) : (fetch(url, init as RequestInit) as ReturnType<Fetch>);
    };
    super(apiKey, { ...options, fetch: (url, init) => outside(send, url, init) });
    self = this;
  }

  /** Counts its queue against `budget`, shared with the module's sender: past it, the oldest events go. */
  shareQueueBudget(budget: QueueBudget): void {
    const host = { queue: (key: string) => this.getPersistedProperty(key as never), maxQueueSize: (this as unknown as { maxQueueSize: number }).maxQueueSize };
    this.queueBudget = budget;
    this.queueAccount = new PostHogQueueAccount(host, budget);
  }

  // posthog-node calls it (after `before_send`) just before queueing an event: room is made in the byte budget.
  protected override processBeforeEnqueue(message: any): any {
    const kept = super.processBeforeEnqueue(message);
    // The request's record rides in the context under a symbol key, for `before_send`: a queued event must not
    // keep the request (its socket, body and user) alive until it is delivered.
    const properties = kept?.properties;
    if (properties && typeof properties === 'object') for (const key of Object.getOwnPropertySymbols(properties)) delete (properties as Record<symbol, unknown>)[key];
    if (kept === null || this.queueAccount === undefined) return kept;
    return this.queueAccount.admit(kept, this.persistedQueueKeyForRoute(this.getQueueRouteKey(kept)));
  }

  override setPersistedProperty(...[key, value]: Parameters<PostHog['setPersistedProperty']>): void {
    super.setPersistedProperty(key, value);
    this.queueAccount?.stored(key, value);
  }

  override captureException(...[error, distinctId, properties, uuid, flags]: Parameters<PostHog['captureException']>): void {
    this.captureExceptionOnce(error, distinctId, properties, uuid, flags);
  }

  override captureExceptionImmediate(...[error, distinctId, properties, flags]: Parameters<PostHog['captureExceptionImmediate']>): Promise<void> {
    if (isMarkedCaptured(error) || this.wasSent(error)) return Promise.resolve();
    if (typeof error === 'object' && error !== null) this.sentErrors.set(error, null);
    return super.captureExceptionImmediate(error, distinctId, properties, flags);
  }

  /**
   * Sends `error` to Error Tracking unless it was already, and returns the uuid
   * of the `$exception` sent for it (now or before), or `undefined` when none
   * was (posthog-node skips an error marked as captured) or its uuid is unknown.
   */
  captureExceptionOnce(...[error, distinctId, properties, uuid, flags]: Parameters<PostHog['captureException']>): string | undefined {
    if (isMarkedCaptured(error)) return undefined;
    if (this.wasSent(error)) return this.sentErrors.get(error as object) ?? undefined;
    const id = uuid ?? randomUUID();
    super.captureException(error, distinctId, properties, id, flags);
    if (typeof error === 'object' && error !== null) this.sentErrors.set(error, id);
    return id;
  }

  private wasSent(error: unknown): boolean {
    return typeof error === 'object' && error !== null && this.sentErrors.has(error);
  }
}

/**
 * Sends `error` through the shared client's `captureException`, once per error
 * object; the uuid of the `$exception` that names it, if one was sent.
 */
export function captureExceptionOnce(client: PostHog, ...args: Parameters<PostHog['captureException']>): string | undefined {
  if (client instanceof SharedPostHog) return client.captureExceptionOnce(...args);
  if (isMarkedCaptured(args[0])) return undefined;
  const uuid = args[3] ?? randomUUID();
  client.captureException(args[0], args[1], args[2], uuid, args[4]);
  return uuid;
}

/**
 * The posthog-node client the module shares with the app (`POSTHOG_CLIENT`):
 * the request context lives in it, and it sends the app's own captures and
 * `$exception`s, with the request's identity where it applies
 * (`stampRequestIdentity`) and scrubbed, before the app's own `before_send` runs. In local
 * mode it is disabled: it still carries the context, and sends nothing.
 */
export function createPostHogClient(options: ResolvedTelemetryOptions, redact: Redactor, sentry: SentryApi | undefined): PostHog {
  if (options.mode !== 'posthog') {
    return new SharedPostHog('phc_local_mode', { ...options.posthogOptions, host: 'http://127.0.0.1:9', disabled: true });
  }
  const own = options.posthogOptions.before_send;
  const beforeSend = [stampRequestIdentity, scrubException(redact), ...(own === undefined ? [] : Array.isArray(own) ? own : [own])];
  const client = new SharedPostHog(options.apiKey!, {
    host: options.host,
    ...(options.captureProcessErrors ? { enableExceptionAutocapture: true } : {}),
    ...options.posthogOptions,
    before_send: beforeSend,
  });
  // Its requests to PostHog never join the app's Sentry traces.
  client.untraced = untracedBy(sentry);
  // Its queue and the module's sender's hold at most `maxQueueBytes` together.
  client.shareQueueBudget(new QueueBudget(options.sender.maxQueueBytes));
  return client;
}

import { PostHog, type BeforeSendFn } from 'posthog-node';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { stampRequestIdentity } from '../request/posthog-context.js';
import type { Redactor } from '../privacy/redact.js';
import { scrubbedProperties, scrubFrame } from '../privacy/sdk-scrub.js';
import { Operation } from '../request/operation.js';
import { OPERATION } from '../request/request-context.js';
import { UNMATCHED_ROUTE, withoutRawUrl } from '../http/route-template.js';
import { letPostHogEndFatalErrors } from '../errors/crash-handlers.js';
import { untracedBy, type SentryApi, type Untraced } from './sentry-bridge.js';
import { PostHogQueueAccount } from '../transport/posthog-node-queue.js';
import { QueueBudget } from '../transport/queue-budget.js';
import type { TelemetryEvent } from '../events/telemetry-events.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';

/** What the steps of `before_send` read of an event: its name and properties (the request's record under a symbol key). */
interface PostHogEvent {
  event: string;
  properties?: Record<PropertyKey, unknown>;
}
type BeforeSend = BeforeSendFn;

/**
 * Redacts what posthog-node attaches to an `$exception` on its own: the
 * messages in `$exception_list` and the source lines around each stack frame.
 */
export function scrubException(redact: (text: string) => string): BeforeSend {
  return <E extends PostHogEvent>(event: E) => {
    const list = event?.event === '$exception' ? event.properties?.$exception_list : undefined;
    if (!Array.isArray(list)) return event;
    // Inside a request, its raw URL (ids, query string) is also kept out, as in its api_error.
    const operation = event.properties?.[OPERATION];
    const scrub = operation instanceof Operation ? withoutRawUrl(redact, operation.rawUrl, operation.endpoint ?? UNMATCHED_ROUTE) : redact;
    const clean = (value: unknown) => (typeof value === 'string' ? scrub(value) : value);
    for (const exception of list) {
      exception.value = clean(exception.value);
      // Paths and source lines with the module's redaction: a route's raw path may also name a directory.
      for (const frame of exception.stacktrace?.frames ?? []) scrubFrame(frame, redact);
    }
    return event;
  };
}

/** The request's correlation, as the module's own events send it (an id such as `request_id` may look random to the redaction). */
const CORRELATION_KEYS = new Set([
  'request_id',
  'environment',
  'trace_id',
  'span_id',
  'parent_span_id',
  'user_id',
  '$session_id',
  '$process_person_profile',
]);
const isPrimitive = (value: unknown) => value === null || ['string', 'number', 'boolean'].includes(typeof value);

/**
 * Redacts what the app itself passes to the shared client's `capture()` (and
 * posthog-node adds): the event name, property names, and every value, nested
 * or in arrays, as a bounded copy (bytes as `[Buffer 123 bytes]`, never byte by
 * byte). An `$exception`'s `$exception_list` is `scrubException`'s, and the
 * request's record (a symbol key) stays for the steps after.
 */
export function scrubCapture(redact: (text: string) => string): BeforeSend {
  return <E extends PostHogEvent>(message: E) => {
    const event: PostHogEvent = message;
    if (!event || typeof event !== 'object') return message;
    if (typeof event.event === 'string') event.event = redact(event.event);
    const properties = event.properties;
    if (properties && typeof properties === 'object') {
      const exception = event.event === '$exception';
      const kept = (key: string) => (exception && key === '$exception_list') || (CORRELATION_KEYS.has(key) && isPrimitive(properties[key]));
      const scrubbed: Record<PropertyKey, unknown> = scrubbedProperties(properties, redact, kept);
      for (const key of Object.getOwnPropertySymbols(properties)) scrubbed[key] = properties[key];
      event.properties = scrubbed;
    }
    return message;
  };
}

/** Where the shared client queues its `$exception`s: the module's sender (`routeExceptionsTo`). */
export interface ExceptionQueue {
  /** False when the event was dropped at once. */
  enqueue(event: TelemetryEvent): boolean;
  /** An `$exception` being built: the queue's flush and shutdown wait for it. */
  hold(work: Promise<unknown>): void;
  /** Delivers what is queued for at most `timeoutMs`, then stops (the same promise for every call). */
  shutdown(timeoutMs: number): Promise<void>;
}

/** The request's record rides in the context under a symbol key, for `before_send`: a queued event must not keep it alive. */
function withoutRequestRecord<T>(message: T): T {
  const properties = (message as { properties?: unknown } | null)?.properties;
  if (properties && typeof properties === 'object')
    for (const key of Object.getOwnPropertySymbols(properties))
      // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- symbol keys the module's context added to the event's own properties
      delete (properties as Record<symbol, unknown>)[key];
  return message;
}

const NOT_QUEUED: Promise<undefined> = Promise.resolve(undefined);

type ClientOptions = NonNullable<ConstructorParameters<typeof PostHog>[1]>;
/** posthog-node's `PostHogCaptureOptions` (uuid, timestamp, …), as its client's public types give it. */
type CaptureOptions = Awaited<ReturnType<PostHog['prepareEventMessage']>>['options'];
type Fetch = NonNullable<ClientOptions['fetch']>;
type FetchOptions = Parameters<Fetch>[1];
type FetchResponse = Awaited<ReturnType<Fetch>>;
/** An event as posthog-node queues it (the argument of its `processBeforeEnqueue`). */
type QueuedMessage = Parameters<PostHog['processBeforeEnqueue']>[0];
/** What `prepareMessage` builds of an `$exception` (its types say JSON values; the timestamp may be a `Date`). */
interface PreparedMessage {
  event: string;
  distinct_id: string;
  properties?: Record<string, unknown>;
  timestamp: Date | string;
  uuid: string;
}

/**
 * posthog-node's requests over node:http(s), with what it reads of an answer
 * (status, headers, text, json). Used when the app has Sentry: under
 * `suppressTracing`, Sentry's `http` instrumentation leaves a request alone,
 * while its `fetch` instrumentation (11.x, tracing on) still adds trace headers.
 */
async function fetchOverHttp(url: string, init: FetchOptions): Promise<FetchResponse> {
  const body =
    init.body === undefined || typeof init.body === 'string' || init.body instanceof Uint8Array
      ? init.body
      : new Uint8Array(await init.body.arrayBuffer());
  const target = new URL(url);
  return new Promise<FetchResponse>((resolve, reject) => {
    const request = (target.protocol === 'https:' ? https : http).request(
      target,
      { method: init.method, headers: init.headers, signal: init.signal },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const header = (name: string) => {
            const value = response.headers[name.toLowerCase()];
            return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
          };
          resolve({
            status: response.statusCode ?? 0,
            headers: { get: header },
            text: async () => text,
            json: async () => JSON.parse(text),
          });
        });
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** posthog-node skips an error carrying this mark (`ErrorTracking.isPreviouslyCapturedError`). */
function isMarkedCaptured(error: unknown): boolean {
  try {
    return (
      typeof error === 'object' &&
      error !== null &&
      (error as { __posthog_previously_captured_error?: unknown }).__posthog_previously_captured_error === true
    );
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
  /** Errors sent to Error Tracking, with the uuid of their `$exception` once queued (`undefined`: none was, or not known). */
  private readonly sentErrors = new WeakMap<object, Promise<string | undefined>>();
  /** Where its `$exception`s go instead of its own queue, once `routeExceptionsTo` ran. */
  private exceptionQueue?: ExceptionQueue;
  /** `$exception`s being built, by uuid: told whether they were queued. */
  private readonly queueing = new Map<string, (queued: boolean) => void>();
  /** Set while `captureException` runs: takes the promise of the work it starts. */
  private takeWork?: (work: Promise<unknown>) => void;
  /** The byte budget its queue shares with the module's sender (`maxQueueBytes`), once `shareQueueBudget` ran. */
  queueBudget?: QueueBudget;
  private queueAccount?: PostHogQueueAccount;

  constructor(apiKey: string, options: ClientOptions = {}) {
    const outside = AsyncLocalStorage.snapshot();
    const own = options.fetch;
    // The client itself once built: `this` does not exist until `super()` returns, and `send` is given to it.
    const built: { client?: SharedPostHog } = {};
    const send: Fetch = (url, init) => {
      const untraced = built.client?.untraced;
      if (untraced) return untraced(() => (own ?? fetchOverHttp)(url, init));
      return own ? own(url, init) : (fetch(url, init as RequestInit) as ReturnType<Fetch>);
    };
    super(apiKey, { ...options, fetch: (url, init) => outside(send, url, init) });
    built.client = this;
  }

  /** Counts its queue against `budget`, shared with the module's sender: past it, the oldest events go. */
  shareQueueBudget(budget: QueueBudget): void {
    const host = {
      queue: (key: string) => this.getPersistedProperty(key as never),
      maxQueueSize: (this as unknown as { maxQueueSize: number }).maxQueueSize,
    };
    this.queueBudget = budget;
    this.queueAccount = new PostHogQueueAccount(host, budget);
  }

  /**
   * Its `$exception`s (the module's, the app's own `captureException`) go to `queue`, the module's sender, once
   * built and through `before_send`: kept through an outage as the module's own events are, within the same bounds,
   * and delivered by the sender's flush and shutdown (its own `flush()` leaves them to the sender, which retries for as long as it takes).
   */
  routeExceptionsTo(queue: ExceptionQueue): void {
    this.exceptionQueue = queue;
  }

  // posthog-node calls it (after `before_send`) just before queueing an event: room is made in the byte budget.
  protected override processBeforeEnqueue(message: QueuedMessage): QueuedMessage | null {
    const kept = withoutRequestRecord(super.processBeforeEnqueue(message));
    const admitted =
      kept === null || this.queueAccount === undefined
        ? kept
        : this.queueAccount.admit(kept, this.persistedQueueKeyForRoute(this.getQueueRouteKey(kept)));
    const uuid = admitted === null ? undefined : (admitted as { uuid?: unknown }).uuid;
    if (typeof uuid === 'string') this.queueing.get(uuid)?.(true);
    return admitted;
  }

  // posthog-node queues an event it built: an `$exception` goes to the module's sender when routed there.
  protected override enqueue(type: string, message: unknown, options?: CaptureOptions, route?: string): void {
    const queue = this.exceptionQueue;
    if (queue === undefined || (message as { event?: unknown } | null | undefined)?.event !== '$exception' || this.optedOut)
      return super.enqueue(type, message, options, route);
    const prepared = withoutRequestRecord(this.prepareMessage(message, options)) as unknown as PreparedMessage;
    const timestamp = prepared.timestamp instanceof Date ? prepared.timestamp.toISOString() : prepared.timestamp;
    const event = {
      event: prepared.event,
      distinct_id: prepared.distinct_id,
      properties: prepared.properties ?? {},
      timestamp,
      uuid: prepared.uuid,
    };
    // Queued whether or not anyone waits for it (`?.()` would skip its argument).
    const queued = queue.enqueue(event);
    this.queueing.get(event.uuid)?.(queued);
  }

  /**
   * After posthog-node's own shutdown (its last `$exception`s built: a fatal error's, captured on the way out),
   * the sender its `$exception`s went to delivers them, within the same deadline.
   */
  override async _shutdown(shutdownTimeoutMs?: number): Promise<void> {
    const deadline = Date.now() + (shutdownTimeoutMs ?? 30_000);
    const alongside = this.flushAlongside?.(shutdownTimeoutMs ?? 30_000).catch(() => undefined);
    await super._shutdown(shutdownTimeoutMs);
    await this.exceptionQueue?.shutdown(Math.max(0, deadline - Date.now()));
    await alongside;
  }

  /** Flushed with the client's shutdown (Sentry's queue: a fatal error's event goes out before posthog-node ends the process). */
  flushAlongside?: (timeoutMs: number) => Promise<unknown>;

  override addPendingPromise<T>(promise: Promise<T>): Promise<T> {
    this.takeWork?.(promise);
    return super.addPendingPromise(promise);
  }

  override setPersistedProperty(...[key, value]: Parameters<PostHog['setPersistedProperty']>): void {
    super.setPersistedProperty(key, value);
    this.queueAccount?.stored(key, value);
  }

  override captureException(...[error, distinctId, properties, uuid, flags]: Parameters<PostHog['captureException']>): void {
    void this.captureExceptionOnce(error, distinctId, properties, uuid, flags);
  }

  override captureExceptionImmediate(
    ...[error, distinctId, properties, flags]: Parameters<PostHog['captureExceptionImmediate']>
  ): Promise<void> {
    if (isMarkedCaptured(error) || this.wasSent(error)) return Promise.resolve();
    if (typeof error === 'object' && error !== null) this.sentErrors.set(error, NOT_QUEUED);
    return super.captureExceptionImmediate(error, distinctId, properties, flags);
  }

  /**
   * Sends `error` to Error Tracking unless it was already; resolves to the uuid
   * of its `$exception` once that is queued (now or before), or to `undefined`
   * when none was: posthog-node skipped the error (marked as captured) or could
   * not build its event (an error whose getters throw), `before_send` dropped
   * it, or the queue refused it. A link to the uuid names an event that was queued.
   */
  captureExceptionOnce(
    ...[error, distinctId, properties, uuid, flags]: Parameters<PostHog['captureException']>
  ): Promise<string | undefined> {
    if (isMarkedCaptured(error)) return NOT_QUEUED;
    const sent = typeof error === 'object' && error !== null ? this.sentErrors.get(error) : undefined;
    if (sent !== undefined) return sent;
    const id = uuid ?? randomUUID();
    const queued = this.queuedAs(id, () => super.captureException(error, distinctId, properties, id, flags));
    if (typeof error === 'object' && error !== null) this.sentErrors.set(error, queued);
    return queued;
  }

  /**
   * Runs `capture`, which builds and queues (or not) the `$exception` of uuid `id`; resolves to `id` once it is
   * queued, to `undefined` once posthog-node's work for it ended without queueing it (or when it started none).
   */
  private queuedAs(id: string, capture: () => void): Promise<string | undefined> {
    let work: Promise<unknown> | undefined;
    this.takeWork = (promise) => (work ??= promise);
    try {
      capture();
    } finally {
      this.takeWork = undefined;
    }
    if (work === undefined) return NOT_QUEUED;
    const started = work;
    const queued = new Promise<string | undefined>((resolve) => {
      const settle = (queued: boolean) => {
        this.queueing.delete(id);
        resolve(queued ? id : undefined);
      };
      this.queueing.set(id, settle);
      started.then(
        () => settle(false),
        () => settle(false),
      );
    });
    this.exceptionQueue?.hold(queued);
    return queued;
  }

  private wasSent(error: unknown): boolean {
    return typeof error === 'object' && error !== null && this.sentErrors.has(error);
  }
}

/**
 * Sends `error` through the shared client's `captureException`, once per error
 * object; resolves to the uuid of the `$exception` that names it once that is
 * queued (`undefined`: none was, or another client's, whose queue is not known).
 */
export function captureExceptionOnce(client: PostHog, ...args: Parameters<PostHog['captureException']>): Promise<string | undefined> {
  if (client instanceof SharedPostHog) return client.captureExceptionOnce(...args);
  client.captureException(...args);
  return NOT_QUEUED;
}

/**
 * The posthog-node client the module shares with the app (`POSTHOG_CLIENT`):
 * the request context lives in it, and it sends the app's own captures and
 * `$exception`s, with the request's identity where it applies
 * (`stampRequestIdentity`) and scrubbed, before the app's own `before_send` runs. In local
 * mode it is disabled: it still carries the context, and sends nothing.
 */
export function createPostHogClient(options: ResolvedTelemetryOptions, redact: Redactor, sentry: SentryApi | undefined): PostHog {
  const apiKey = options.apiKey;
  // Without a key the mode is never `posthog`.
  if (options.mode !== 'posthog' || apiKey === undefined) {
    return new SharedPostHog('phc_local_mode', { ...options.posthogOptions, host: 'http://127.0.0.1:9', disabled: true });
  }
  const own = options.posthogOptions.before_send;
  const beforeSend = [
    stampRequestIdentity,
    scrubException(redact),
    scrubCapture(redact),
    ...(own === undefined ? [] : Array.isArray(own) ? own : [own]),
  ];
  const client = new SharedPostHog(apiKey, {
    host: options.host,
    ...(options.captureProcessErrors ? { enableExceptionAutocapture: true } : {}),
    ...options.posthogOptions,
    before_send: beforeSend,
  });
  // Its requests to PostHog never join the app's Sentry traces.
  client.untraced = untracedBy(sentry);
  if (options.captureProcessErrors) {
    letPostHogEndFatalErrors();
    if (sentry) client.flushAlongside = (timeoutMs) => sentry.flush(Math.min(timeoutMs, 2000));
  }
  // Its queue and the module's sender's hold at most `maxQueueBytes` together.
  client.shareQueueBudget(new QueueBudget(options.sender.maxQueueBytes));
  return client;
}

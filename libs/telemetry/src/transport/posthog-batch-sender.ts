import { Logger } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import * as http from 'node:http';
import * as https from 'node:https';
import type { DropLog } from './drop-log.js';
import type { EventSink } from './event-sink.js';
import { GzipStream } from './gzip-stream.js';
import { PostThread } from './post-thread.js';
import { QueueBudget, type BudgetAccount } from './queue-budget.js';
import type { Untraced } from '../outlets/sentry-bridge.js';
import type { TelemetryEvent } from '../events/telemetry-events.js';
import type { SenderSettings } from '../telemetry.options.js';
import { LIB_NAME, LIB_VERSION } from '../version.js';

export interface BatchSenderOptions extends SenderSettings {
  host: string;
  apiKey: string;
  /** The byte budget shared with posthog-node's queue; by default one of its own, of `maxQueueBytes`. */
  budget?: QueueBudget;
  /** Gzip and post from a thread of the sender's own (`PostThread`). @default true */
  postThread?: boolean;
}

/** Longest wait between two tries of a batch while PostHog is unreachable. */
const MAX_RETRY_DELAY_MS = 30_000;
/** Longest wait between two tries during shutdown: PostHog may be back any moment, and the deadline is near. */
const SHUTDOWN_RETRY_DELAY_MS = 250;
/**
 * Most bytes of JSON in one request (a single larger event still goes alone): what one delivery holds besides
 * the queue (the body, its gzip) stays small whatever the events, and a body is far below PostHog's limit.
 */
export const MAX_BATCH_BYTES = 2 ** 20;
/** How long a 413 teaches the sender that bodies of that size are refused (after which it tries them again). */
const TOO_LARGE_MEMORY_MS = 10 * 60_000;

/**
 * The one place that sends. Events wait in a bounded in-memory queue and leave
 * in gzip batches (at most `MAX_BATCH_BYTES` of JSON) to PostHog's `/batch/`
 * endpoint, off the request path: a request pays for serialising its events
 * (one string each, counted in UTF-8 bytes) and an array push. The
 * batches are gzipped and posted over a keep-alive agent by a thread of their
 * own (`PostThread`), or from the main thread where no thread can be made. One batch is in flight at a time;
 * see `deliver` for what happens when PostHog fails. posthog-node's
 * `$exception`s are queued here too (`SharedPostHog.routeExceptionsTo`).
 *
 * The queue is bounded in events (`maxQueueSize`) and in bytes: its JSON, with
 * the batch in flight, counts against a {@link QueueBudget} shared with
 * posthog-node's queue (`maxQueueBytes`). Past either bound the oldest events
 * go, counted and logged at most once a minute per kind of drop.
 *
 * Its timers and requests belong to no request: they run in the async context
 * the sender was made in (not that of whichever request queued an event or
 * asked for a flush), and each request to PostHog leaves from the sending
 * thread, where no instrumentation of the app's runs, or else through
 * `untraced` (Sentry's `suppressTracing` when the app has Sentry): it is never
 * a span, a breadcrumb or a carrier of trace headers of the app's.
 */
export class PostHogBatchSender implements EventSink, BudgetAccount {
  private readonly logger = new Logger('Telemetry');
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  /**
   * Queued events' JSON, oldest first, and their sizes in UTF-8 bytes (`sizes`, the same order). An event's
   * JSON is written by concatenation, a tree of string pieces; it is flattened in place into one string as
   * it is queued, so the pieces die young and what waits for the batch is one object (a tree waiting for
   * its batch cost the young generation's collector more than flattening does). The batch body is their
   * text joined, converted to UTF-8 once.
   */
  private queue: string[] = [];
  private sizes: number[] = [];
  private bytes = 0;
  private inFlightBytes = 0;
  private timer?: NodeJS.Timeout;
  private sending?: Promise<void>;
  /** Shutting down (`shutdown` ran): delivering what is queued, retrying without long waits. */
  private stopping?: Promise<void>;
  /** Shut down: events are dropped. */
  private closed = false;
  /** Work that will enqueue events (`hold`): flush and shutdown wait for it. */
  private readonly held = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  /** Ends the current wait between two tries (shutdown does, to try at once). */
  private wake?: AbortController;
  readonly drops: DropLog;
  readonly budget: QueueBudget;
  private unreachableSince?: number;
  private flushWanted = false;
  /** Events of the batch being delivered. */
  private inFlight = 0;
  /** The smallest body (JSON bytes) PostHog answered 413, and until when to believe it. */
  private tooLarge?: { bytes: number; until: number };
  /** Gzips and posts off the main thread (`PostThread`); `null` where no thread could be made, `undefined` before the first batch. */
  private thread?: PostThread | null;
  /** Where the sender posts from the main thread (no thread): its deflate stream. */
  private readonly gzip = new GzipStream();
  /** Runs a function in the async context the sender was made in, outside any request. */
  private readonly outside = AsyncLocalStorage.snapshot();
  untraced: Untraced = (send) => send();
  /** What every body starts with: `{"api_key":…,"batch":[`. */
  private readonly bodyHead: string;
  /** Its size in UTF-8 bytes. */
  private readonly bodyHeadBytes: number;

  constructor(private readonly options: BatchSenderOptions) {
    // `${host}/batch/`, as posthog-node does: a host with a path (a reverse proxy) keeps it.
    this.url = new URL(options.host.replace(/\/+$/, '') + '/batch/');
    this.transport = this.url.protocol === 'https:' ? https : http;
    this.bodyHead = `{"api_key":${JSON.stringify(options.apiKey)},"batch":[`;
    this.bodyHeadBytes = Buffer.byteLength(this.bodyHead);
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: 2 });
    this.budget = options.budget ?? new QueueBudget(options.maxQueueBytes);
    this.drops = this.budget.drops;
    this.budget.join(this);
  }

  /** Events waiting to be sent (not counting a batch in flight). */
  get pending(): number {
    return this.queue.length;
  }

  /** Bytes of JSON held: the queue and the batch in flight. */
  get queuedBytes(): number {
    return this.bytes + this.inFlightBytes;
  }

  /** Queues `event`; false when it was dropped at once (shut down, unserialisable, larger than the budget). */
  enqueue(event: TelemetryEvent): boolean {
    if (this.closed) {
      this.drops.drop('closed', 1, 'the sender is shut down');
      return false;
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(event);
    } catch {
      json = undefined;
    }
    if (json === undefined) {
      this.drops.drop('unserialisable', 1, 'the event could not be serialised');
      return false;
    }
    return this.enqueueJson(json);
  }

  /**
   * Queues an event already serialised (events/api-request-json.ts), of `size` UTF-8 bytes when the caller
   * knows it; false when it was dropped at once.
   */
  enqueueJson(json: string, size?: number): boolean {
    if (this.closed) {
      this.drops.drop('closed', 1, 'the sender is shut down');
      return false;
    }
    // Counting its bytes flattens it too.
    if (size === undefined) size = Buffer.byteLength(json);
    else FLATTENS.test(json);
    if (this.budget.tooLarge(size)) {
      this.drops.drop('over-budget', 1, `an event of ${size} bytes is larger than maxQueueBytes (${this.budget.maxBytes})`);
      return false;
    }
    if (this.queue.length >= this.options.maxQueueSize) this.evictOldest();
    this.budget.makeRoom(size);
    this.queue.push(json);
    this.sizes.push(size);
    this.bytes += size;
    this.budget.noteUsage();
    this.schedule();
    return true;
  }

  hold(work: Promise<unknown>): void {
    const settled: Promise<void> = work.then(
      () => void this.held.delete(settled),
      () => void this.held.delete(settled),
    );
    this.held.add(settled);
  }

  /** Waits until no held work is left (work held meanwhile included). */
  private async heldSettled(): Promise<void> {
    while (this.held.size > 0) await Promise.all(this.held);
  }

  /** Drops the oldest queued event (the newest are the most useful after an outage). */
  evictOldest(): number {
    if (this.queue.shift() === undefined) return 0;
    const size = this.sizes.shift() ?? 0;
    this.bytes -= size;
    this.drops.drop(
      'queue-full',
      1,
      `the queue is full (maxQueueSize ${this.options.maxQueueSize}, maxQueueBytes ${this.budget.maxBytes} shared with posthog-node)`,
    );
    return size;
  }

  /** Sends now when a batch is full, else within the flush interval. */
  private schedule(): void {
    if (this.sending !== undefined) return;
    if (this.queue.length >= this.options.flushAt) this.startSending(false);
    else if (this.timer === undefined) {
      this.timer = this.outside(() => setTimeout(() => this.startSending(true), this.options.flushIntervalMs));
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    await this.heldSettled();
    return this.startSending(true);
  }

  /**
   * Delivers what is queued, and what held work still queues, for at most
   * `timeoutMs`; events still arrive meanwhile (an `$exception` being built).
   * Then the sender is closed: later events are dropped. Called again, it ends with the first call.
   */
  shutdown(timeoutMs: number): Promise<void> {
    this.stopping ??= this.stop(timeoutMs);
    return this.stopping;
  }

  private async stop(timeoutMs: number): Promise<void> {
    // A batch waiting out its retry backoff is tried again at once.
    this.wake?.abort();
    let timeout: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timeout = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const drained = (async () => {
      await this.heldSettled();
      while (this.queue.length > 0 || this.sending) await this.startSending(true);
    })();
    const outcome = await Promise.race([drained, deadline]);
    clearTimeout(timeout);
    this.closed = true;
    if (outcome === 'timeout') {
      const lost = this.queue.length + this.inFlight;
      this.queue = [];
      this.sizes = [];
      this.bytes = 0;
      this.abort.abort();
      this.thread?.abort();
      this.logger.warn(`Shutdown timed out after ${timeoutMs} ms: ${lost} event(s) not delivered to PostHog.`);
    }
    this.drops.flush();
    this.agent.destroy();
    this.gzip.close();
    await this.thread?.close();
  }

  /**
   * Starts the one sending loop, or joins it. `all`: also send a batch that is
   * not full (a flush, the interval, shutdown); otherwise only full batches
   * leave, so events that arrive while a batch is in flight wait for the next
   * full batch or the interval instead of leaving one request each.
   */
  private startSending(all: boolean): Promise<void> {
    if (all) this.flushWanted = true;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.sending ??= this.outside(() => this.drain()).finally(() => {
      this.sending = undefined;
      if (this.queue.length > 0 && this.stopping === undefined) this.schedule();
    });
    return this.sending;
  }

  private async drain(): Promise<void> {
    while (!this.abort.signal.aborted) {
      const length = this.queue.length;
      if (length === 0 || (!this.flushWanted && length < this.options.flushAt)) break;
      const { count, bytes } = this.nextBatch();
      if (count === length) this.flushWanted = false; // this batch takes everything asked for
      const batch = this.queue.splice(0, count);
      const sizes = this.sizes.splice(0, count);
      this.bytes -= bytes;
      this.inFlight = batch.length;
      this.inFlightBytes = bytes;
      try {
        await this.deliver(batch, sizes, bytes);
      } finally {
        this.inFlight = 0;
        this.inFlightBytes = 0;
      }
    }
  }

  /** How many of the oldest events the next batch takes (`maxBatchSize`, `MAX_BATCH_BYTES`), and their bytes. */
  private nextBatch(): { count: number; bytes: number } {
    const limit = Math.min(this.queue.length, this.options.maxBatchSize);
    let bytes = this.sizes[0] ?? 0;
    let count = limit === 0 ? 0 : 1;
    while (count < limit && bytes + this.sizes[count] <= MAX_BATCH_BYTES) bytes += this.sizes[count++];
    return { count, bytes };
  }

  /**
   * Sends one batch until PostHog takes it. Transient failures (network,
   * timeout, 5xx, 408, 429) are retried with doubling waits, capped, for as
   * long as it takes: nothing is lost to a short outage, and memory stays
   * bounded by the queue. Permanent refusals (400, 401, …) drop the batch.
   * A 413 splits it, down to single events; one event answered 413 is dropped,
   * and the size is remembered for a while, so later batches as large are
   * split without asking again and events as large dropped without a request.
   * Only shutdown's deadline ends the retries.
   */
  private async deliver(batch: string[], sizes: number[], bytes: number): Promise<void> {
    for (let attempt = 0; !this.abort.signal.aborted; attempt++) {
      let failure: string;
      try {
        // Built again for each try: `sent_at` is PostHog's clock-skew reference.
        const body = this.body(batch, bytes);
        // Read now: posting moves the body's memory to the sending thread.
        const bodyBytes = body.length;
        if (this.tooLarge !== undefined && Date.now() > this.tooLarge.until) this.tooLarge = undefined;
        if (this.tooLarge !== undefined && bodyBytes >= this.tooLarge.bytes) return await this.tooLargeFor(batch, sizes, bytes, bodyBytes);
        const status = await this.post(body);
        if (status >= 200 && status < 300) {
          if (this.unreachableSince !== undefined) {
            this.logger.log(
              `PostHog is reachable again after ${Math.round((Date.now() - this.unreachableSince) / 1000)} s; queued events are being delivered.`,
            );
            this.unreachableSince = undefined;
          }
          return;
        }
        if (status === 413) {
          this.tooLarge = { bytes: Math.min(bodyBytes, this.tooLarge?.bytes ?? Infinity), until: Date.now() + TOO_LARGE_MEMORY_MS };
          return await this.tooLargeFor(batch, sizes, bytes, bodyBytes);
        }
        if (status !== 408 && status !== 429 && status < 500) {
          this.drops.drop(`refused-${status}`, batch.length, `PostHog refused them with ${status} (check the API key and host)`);
          return;
        }
        failure = `PostHog answered ${status}`;
      } catch (error) {
        failure = error instanceof Error ? error.message : String(error);
      }
      if (attempt === this.options.retryCount && this.unreachableSince === undefined && !this.abort.signal.aborted) {
        this.unreachableSince = Date.now();
        this.logger.warn(
          `Could not deliver events to PostHog at ${this.url.origin} (${failure}); retrying every ${MAX_RETRY_DELAY_MS / 1000} s at most, with up to ${this.options.maxQueueSize} events waiting.`,
        );
      }
      const backoff = Math.min(this.options.retryDelayMs * 2 ** attempt, MAX_RETRY_DELAY_MS);
      await this.sleep(this.stopping !== undefined ? Math.min(backoff, SHUTDOWN_RETRY_DELAY_MS) : backoff);
    }
  }

  /**
   * PostHog refused a body of `bodyBytes` (now or, for one as large, before) with 413: the batch's halves go
   * on separately, and a single event is dropped, as PostHog will never take it.
   */
  private async tooLargeFor(batch: string[], sizes: number[], bytes: number, bodyBytes: number): Promise<void> {
    if (batch.length === 1) {
      this.drops.drop('too-large', 1, `PostHog answered 413 (Content Too Large) to a single event (a body of ${bodyBytes} bytes or more)`);
      return;
    }
    const half = Math.ceil(batch.length / 2);
    const firstSizes = sizes.slice(0, half);
    const firstBytes = firstSizes.reduce((sum, size) => sum + size, 0);
    await this.deliver(batch.slice(0, half), firstSizes, firstBytes);
    await this.deliver(batch.slice(half), sizes.slice(half), bytes - firstBytes);
  }

  /**
   * The request body's JSON: the events' JSON (`bytes` of UTF-8) joined into `{ api_key, batch, sent_at }`,
   * as UTF-8 (one conversion). Text of as many characters as its UTF-8 bytes is ASCII: copied as it is, without
   * counting and converting it (every character beyond ASCII takes more bytes than characters in UTF-8).
   */
  private body(batch: string[], bytes: number): Buffer {
    const tail = `],"sent_at":"${new Date().toISOString()}"}`;
    const text = this.bodyHead + batch.join(',') + tail;
    // The commas and the tail are ASCII.
    const utf8Bytes = this.bodyHeadBytes + bytes + batch.length - 1 + tail.length;
    return Buffer.from(text, text.length === utf8Bytes ? 'latin1' : 'utf8');
  }

  /**
   * Posts `json` (gzipped unless compression is off; at the fastest level: on a batch of 100 events 1.5 %
   * larger than the default level, for 18 % less CPU): from the sending thread, or from here without one.
   */
  private async post(json: Buffer): Promise<number> {
    const compression = this.options.compression;
    if (this.thread === undefined)
      this.thread =
        this.options.postThread === false
          ? null
          : (PostThread.start({ url: this.url.href, timeoutMs: this.options.requestTimeoutMs, userAgent: USER_AGENT }) ?? null);
    if (this.thread?.alive) return this.thread.post(json, compression);
    return this.postHere(compression ? await this.gzip.compress(json) : json);
  }

  private postHere(body: Buffer): Promise<number> {
    const timeoutMs = this.options.requestTimeoutMs;
    return this.untraced(
      () =>
        new Promise<number>((resolve, reject) => {
          // The whole exchange has a deadline, not only an idle socket: a PostHog (or proxy) that trickles its
          // status line, headers or body a byte at a time would otherwise hold the one batch in flight for good.
          // Destroying the request destroys its socket, so the next try starts on a fresh connection.
          const deadline = setTimeout(() => request.destroy(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
          deadline.unref();
          const succeed = (status: number) => {
            clearTimeout(deadline);
            resolve(status);
          };
          const fail = (error: Error) => {
            clearTimeout(deadline);
            reject(error);
          };
          const request = this.transport.request(
            this.url,
            {
              method: 'POST',
              agent: this.agent,
              signal: this.abort.signal,
              timeout: timeoutMs,
              headers: {
                'Content-Type': 'application/json',
                'Content-Length': body.length,
                'User-Agent': USER_AGENT,
                ...(this.options.compression ? { 'Content-Encoding': 'gzip' } : {}),
              },
            },
            (response) => {
              response.resume();
              response.on('end', () => succeed(response.statusCode ?? 0));
              response.on('error', fail);
              response.on('aborted', () => fail(new Error('the answer was cut short')));
            },
          );
          request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
          request.on('error', fail);
          // After 'end' when all went well (then a no-op); otherwise the last word, whatever ended the exchange.
          request.on('close', () => fail(new Error('the connection closed before a complete answer')));
          request.end(body);
        }),
    );
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.abort.signal.aborted) return resolve();
      const wake = (this.wake = new AbortController());
      const timer = setTimeout(done, ms);
      timer.unref();
      const signal = this.abort.signal;
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        wake.signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
      wake.signal.addEventListener('abort', done, { once: true });
    }).finally(() => {
      this.wake = undefined;
    });
  }
}

const USER_AGENT = `${LIB_NAME}/${LIB_VERSION}`;

/**
 * A regular expression's test flattens the text it reads, in place (V8 matches only flat strings); anchored
 * and never matching past the first character, this one reads no further.
 */
const FLATTENS = /^$/;

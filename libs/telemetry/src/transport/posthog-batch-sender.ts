import { Logger } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import * as http from 'node:http';
import * as https from 'node:https';
import { promisify } from 'node:util';
import { constants, gzip as gzipCallback } from 'node:zlib';
import type { EventSink } from './event-sink.js';
import type { Untraced } from '../outlets/sentry-bridge.js';
import type { TelemetryEvent } from '../events/telemetry-events.js';
import type { SenderSettings } from '../telemetry.options.js';
import { LIB_NAME, LIB_VERSION } from '../version.js';

const gzip = promisify(gzipCallback);

export interface BatchSenderOptions extends SenderSettings {
  host: string;
  apiKey: string;
}

const DROP_LOG_INTERVAL_MS = 60_000;
/** Longest wait between two tries of a batch while PostHog is unreachable. */
const MAX_RETRY_DELAY_MS = 30_000;

/**
 * The one place that sends. Events wait in a bounded in-memory queue and leave
 * in gzip batches to PostHog's `/batch/` endpoint over a keep-alive agent, off
 * the request path: a request only pays for an array push. One batch is in
 * flight at a time; see `deliver` for what happens when PostHog fails.
 *
 * Its timers and requests belong to no request: they run in the async context
 * the sender was made in (not that of whichever request queued an event or
 * asked for a flush), and each request to PostHog goes through `untraced`
 * (Sentry's `suppressTracing` when the app has Sentry), so it is never a span,
 * a breadcrumb or a carrier of trace headers of the app's.
 */
export class PostHogBatchSender implements EventSink {
  private readonly logger = new Logger('Telemetry');
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private queue: TelemetryEvent[] = [];
  private timer?: NodeJS.Timeout;
  private sending?: Promise<void>;
  private closed = false;
  private readonly abort = new AbortController();
  private droppedSinceLog = 0;
  private dropReason = '';
  private lastDropLog = -DROP_LOG_INTERVAL_MS;
  private dropLogTimer?: NodeJS.Timeout;
  private unreachableSince?: number;
  private flushWanted = false;
  /** Events of the batch being delivered. */
  private inFlight = 0;
  /** Runs a function in the async context the sender was made in, outside any request. */
  private readonly outside = AsyncLocalStorage.snapshot();
  untraced: Untraced = (send) => send();

  constructor(private readonly options: BatchSenderOptions) {
    // `${host}/batch/`, as posthog-node does: a host with a path (a reverse proxy) keeps it.
    this.url = new URL(options.host.replace(/\/+$/, '') + '/batch/');
    this.transport = this.url.protocol === 'https:' ? https : http;
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: 2 });
  }

  /** Events waiting to be sent (not counting a batch in flight). */
  get pending(): number {
    return this.queue.length;
  }

  enqueue(event: TelemetryEvent): void {
    if (this.closed) {
      this.drop(1, 'the sender is shut down');
      return;
    }
    if (this.queue.length >= this.options.maxQueueSize) {
      // Oldest first: during an outage the newest events are the most useful.
      this.queue.splice(0, this.queue.length - this.options.maxQueueSize + 1);
      this.drop(1, 'the queue is full');
    }
    this.queue.push(event);
    this.schedule();
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

  flush(): Promise<void> {
    return this.startSending(true);
  }

  async shutdown(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    let timeout: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timeout = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const drained = (async () => {
      while (this.queue.length > 0 || this.sending) await this.startSending(true);
    })();
    const outcome = await Promise.race([drained, deadline]);
    clearTimeout(timeout);
    if (outcome === 'timeout') {
      const lost = this.queue.length + this.inFlight;
      this.queue = [];
      this.abort.abort();
      this.logger.warn(`Shutdown timed out after ${timeoutMs} ms: ${lost} event(s) not delivered to PostHog.`);
    }
    this.logDrops();
    this.agent.destroy();
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
      if (this.queue.length > 0 && !this.closed) this.schedule();
    });
    return this.sending;
  }

  private async drain(): Promise<void> {
    while (!this.abort.signal.aborted) {
      const length = this.queue.length;
      if (length === 0 || (!this.flushWanted && length < this.options.flushAt)) break;
      if (length <= this.options.maxBatchSize) this.flushWanted = false; // this batch takes everything asked for
      const batch = this.queue.splice(0, this.options.maxBatchSize);
      this.inFlight = batch.length;
      await this.deliver(batch);
      this.inFlight = 0;
    }
  }

  /**
   * Sends one batch until PostHog takes it. Transient failures (network,
   * timeout, 5xx, 408, 429) are retried with doubling waits, capped, for as
   * long as it takes: nothing is lost to a short outage, and memory stays
   * bounded by the queue. Permanent refusals (400, 401, …) drop the batch;
   * a 413 splits it. Only shutdown's deadline ends the retries.
   */
  private async deliver(batch: TelemetryEvent[]): Promise<void> {
    for (let attempt = 0; !this.abort.signal.aborted; attempt++) {
      let failure: string;
      try {
        const status = await this.post(batch);
        if (status >= 200 && status < 300) {
          if (this.unreachableSince !== undefined) {
            this.logger.log(`PostHog is reachable again after ${Math.round((Date.now() - this.unreachableSince) / 1000)} s; queued events are being delivered.`);
            this.unreachableSince = undefined;
          }
          return;
        }
        if (status === 413 && batch.length > 1) {
          const half = Math.ceil(batch.length / 2);
          await this.deliver(batch.slice(0, half));
          await this.deliver(batch.slice(half));
          return;
        }
        if (status !== 408 && status !== 429 && status < 500) {
          this.logger.warn(`PostHog refused a batch with ${status}: ${batch.length} event(s) dropped (check the API key and host).`);
          this.drop(batch.length, `PostHog answered ${status}`);
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
      await this.sleep(Math.min(this.options.retryDelayMs * 2 ** attempt, MAX_RETRY_DELAY_MS));
    }
  }

  private async post(batch: TelemetryEvent[]): Promise<number> {
    const json = JSON.stringify({ api_key: this.options.apiKey, batch, sent_at: new Date().toISOString() });
    // Fastest level: on a batch of 100 events 1.5 % larger than the default level, for 18 % less CPU.
    const body = this.options.compression ? await gzip(json, { level: constants.Z_BEST_SPEED }) : Buffer.from(json);
    return this.untraced(() => new Promise<number>((resolve, reject) => {
      const request = this.transport.request(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          signal: this.abort.signal,
          timeout: this.options.requestTimeoutMs,
          headers: {
            'Content-Type': 'application/json',
            'Content-Length': body.length,
            'User-Agent': `${LIB_NAME}/${LIB_VERSION}`,
            ...(this.options.compression ? { 'Content-Encoding': 'gzip' } : {}),
          },
        },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
          response.on('error', reject);
        },
      );
      request.on('timeout', () => request.destroy(new Error(`no answer within ${this.options.requestTimeoutMs} ms`)));
      request.on('error', reject);
      request.end(body);
    }));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.abort.signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      timer.unref();
      const signal = this.abort.signal;
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Counts dropped events and says so at most once a minute (and once more at shutdown). */
  private drop(count: number, why: string): void {
    this.droppedSinceLog += count;
    this.dropReason = why;
    if (this.dropLogTimer !== undefined) return;
    const wait = Math.max(0, this.lastDropLog + DROP_LOG_INTERVAL_MS - Date.now());
    this.dropLogTimer = this.outside(() => setTimeout(() => this.logDrops(), wait));
    this.dropLogTimer.unref();
  }

  private logDrops(): void {
    clearTimeout(this.dropLogTimer);
    this.dropLogTimer = undefined;
    if (this.droppedSinceLog === 0) return;
    this.lastDropLog = Date.now();
    this.logger.warn(`Dropped ${this.droppedSinceLog} telemetry event(s): ${this.dropReason}.`);
    this.droppedSinceLog = 0;
  }
}

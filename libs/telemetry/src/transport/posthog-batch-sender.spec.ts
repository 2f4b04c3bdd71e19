import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { MAX_BATCH_BYTES, PostHogBatchSender, type BatchSenderOptions } from './posthog-batch-sender.js';
import type { TelemetryEvent } from '../events/telemetry-events.js';
import { LIB_NAME, LIB_VERSION } from '../version.js';

interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: { api_key: string; batch: TelemetryEvent[]; sent_at: string };
}

/** What the fake PostHog does with a request: answer with a status, never answer, or trickle a 200 a byte at a time, for ever. */
type Answer = number | 'hang' | 'trickle';

/** A fake PostHog `/batch/` endpoint on 127.0.0.1. */
class FakePostHog {
  readonly requests: ReceivedRequest[] = [];
  /** Decides each answer; gets the decoded request and its 0-based index. */
  answer: (request: ReceivedRequest, index: number) => Answer = () => 200;
  readonly hanging = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  private server?: Server;

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
        const received: ReceivedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: JSON.parse(text) };
        const index = this.requests.push(received) - 1;
        const answer = this.answer(received, index);
        if (answer === 'trickle') {
          // The status line, then an endless header, one byte every 20 ms: the socket is never idle, the answer never complete.
          const bytes = Buffer.from('HTTP/1.1 200 OK\r\nX-Trickle: ');
          let sent = 0;
          const timer = setInterval(() => {
            if (req.socket.destroyed) return clearInterval(timer);
            req.socket.write(sent < bytes.length ? bytes.subarray(sent, sent + 1) : 'a');
            sent++;
          }, 20);
          req.socket.on('close', () => clearInterval(timer));
          this.hanging.add(res);
          res.on('close', () => this.hanging.delete(res));
          return;
        }
        if (answer === 'hang') {
          this.hanging.add(res);
          res.on('close', () => this.hanging.delete(res));
          return;
        }
        res.writeHead(answer, { 'Content-Type': 'application/json' });
        res.end(answer < 300 ? '{"status":"Ok"}' : '{"error":"nope"}');
      });
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get host(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  /** Answers every hanging request with `status`. */
  release(status = 200): void {
    for (const res of this.hanging) {
      if (res.socket && res.socket.bytesWritten > 0 && !res.headersSent) {
        res.destroy(); // a trickling answer: its raw bytes are already out
        continue;
      }
      res.writeHead(status);
      res.end();
    }
    this.hanging.clear();
  }

  /** Uuids of the events in every request answered (or to be answered) 2xx, in arrival order. */
  uuids(indexes: number[] = this.requests.map((_, i) => i)): string[] {
    return indexes.flatMap((i) => this.requests[i].body.batch.map((e) => e.uuid));
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function event(i: number): TelemetryEvent {
  return {
    event: 'api_request',
    distinct_id: `user-${i}`,
    properties: { endpoint: '/items/:id', status_code: 200, n: i },
    timestamp: new Date().toISOString(),
    uuid: `e${i}`,
  };
}

async function waitFor(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let server: FakePostHog;
/** Whether the senders of the test post from their thread (the default) or from the main thread (where no thread can be made). */
let fromThread = true;
let senders: PostHogBatchSender[];
let warn: ReturnType<typeof jest.spyOn>;
let log: ReturnType<typeof jest.spyOn>;

function sender(overrides: Partial<BatchSenderOptions> = {}): PostHogBatchSender {
  const s = new PostHogBatchSender({
    host: server.host,
    apiKey: 'phc_test_key',
    flushAt: 1,
    flushIntervalMs: 10,
    maxQueueSize: 100,
    maxQueueBytes: 8 * 2 ** 20,
    maxBatchSize: 100,
    requestTimeoutMs: 5000,
    retryCount: 3,
    retryDelayMs: 20,
    compression: true,
    postThread: fromThread,
    ...overrides,
  });
  senders.push(s);
  return s;
}

beforeEach(async () => {
  warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  // The sender's "reachable again" line: expected here, asserted where it matters.
  log = jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
  senders = [];
  server = await new FakePostHog().start();
});

afterEach(async () => {
  server.release(200);
  await Promise.all(senders.map((s) => s.shutdown(200)));
  await server.stop();
  warn.mockRestore();
  log.mockRestore();
});

describe.each([true, false])('PostHogBatchSender (posting from its thread: %s)', (thread) => {
  beforeEach(() => {
    fromThread = thread;
  });

  it('delivers events as a gzip { api_key, batch, sent_at } body to /batch/', async () => {
    const s = sender({ flushAt: 3, flushIntervalMs: 60_000 });
    const events = [event(1), event(2), event(3)];
    const before = Date.now();
    for (const e of events) s.enqueue(e);
    await waitFor(() => server.requests.length === 1);

    const [request] = server.requests;
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/batch/');
    expect(request.headers['content-encoding']).toBe('gzip');
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers['user-agent']).toBe(`${LIB_NAME}/${LIB_VERSION}`);
    expect(Object.keys(request.body).sort()).toEqual(['api_key', 'batch', 'sent_at']);
    expect(request.body.api_key).toBe('phc_test_key');
    expect(request.body.batch).toEqual(events);
    expect(new Date(request.body.sent_at).toISOString()).toBe(request.body.sent_at);
    expect(Date.parse(request.body.sent_at)).toBeGreaterThanOrEqual(before - 1);
    await sleep(50);
    expect(server.requests).toHaveLength(1);
  });

  it('sends plain JSON when compression is off', async () => {
    const s = sender({ compression: false });
    s.enqueue(event(1));
    await waitFor(() => server.requests.length === 1);
    expect(server.requests[0].headers['content-encoding']).toBeUndefined();
    expect(server.uuids()).toEqual(['e1']);
  });

  it('sends text beyond ASCII as UTF-8, in a batch with ASCII events, queued as events or as JSON with its size', async () => {
    const s = sender({ flushAt: 4, flushIntervalMs: 60_000, compression: false });
    const events = [
      event(1),
      { ...event(2), distinct_id: 'ユーザー 😀 é', properties: { endpoint: '/café/:id', n: 2 } },
      event(3),
      { ...event(4), distinct_id: 'ü' },
    ];
    s.enqueue(events[0]);
    s.enqueue(events[1]);
    for (const json of [JSON.stringify(events[2]), JSON.stringify(events[3])]) s.enqueueJson(json, Buffer.byteLength(json));
    await waitFor(() => server.requests.length === 1);
    expect(server.requests[0].body.batch).toEqual(events);
  });

  it('sends a partial batch after the flush interval', async () => {
    const s = sender({ flushAt: 100, flushIntervalMs: 30 });
    s.enqueue(event(1));
    s.enqueue(event(2));
    expect(s.pending).toBe(2);
    expect(server.requests).toHaveLength(0);
    await waitFor(() => server.requests.length === 1);
    expect(server.uuids()).toEqual(['e1', 'e2']);
    expect(s.pending).toBe(0);
  });

  it('flush() delivers what waits before it resolves', async () => {
    const s = sender({ flushAt: 100, flushIntervalMs: 60_000 });
    s.enqueue(event(1));
    s.enqueue(event(2));
    await s.flush();
    expect(server.uuids()).toEqual(['e1', 'e2']);
  });

  it('retries a 500 and delivers the batch once the server recovers', async () => {
    server.answer = (_request, index) => (index < 2 ? 500 : 200);
    const s = sender({ retryCount: 3, retryDelayMs: 20 });
    s.enqueue(event(1));
    await waitFor(() => server.requests.length === 3);
    await sleep(150);
    expect(server.requests).toHaveLength(3);
    expect(server.requests.map((r) => r.body.batch.map((e) => e.uuid))).toEqual([['e1'], ['e1'], ['e1']]);
  });

  it.each([408, 429, 502, 503])('retries a %i too', async (status) => {
    server.answer = (_request, index) => (index === 0 ? status : 200);
    const s = sender();
    s.enqueue(event(1));
    await waitFor(() => server.requests.length === 2);
    expect(server.uuids()).toEqual(['e1', 'e1']);
  });

  it('keeps retrying past retryCount while PostHog fails, warns once, and delivers when it recovers', async () => {
    server.answer = (_request, index) => (index < 4 ? 500 : 200);
    const s = sender({ retryCount: 1, retryDelayMs: 10 });
    s.enqueue(event(1));
    await waitFor(() => server.requests.length === 5);
    expect(server.uuids()).toEqual(['e1', 'e1', 'e1', 'e1', 'e1']);
    expect(warn.mock.calls.filter(([m]: unknown[]) => /Could not deliver/.test(String(m)))).toHaveLength(1);
    s.enqueue(event(2));
    await waitFor(() => server.requests.length === 6);
    expect(server.uuids([5])).toEqual(['e2']);
  });

  it('retries a request that gets no answer within requestTimeoutMs', async () => {
    server.answer = (_request, index) => (index === 0 ? 'hang' : 200);
    const s = sender({ requestTimeoutMs: 100, retryCount: 1, retryDelayMs: 10 });
    s.enqueue(event(1));
    await waitFor(() => server.requests.length === 2);
    expect(server.uuids()).toEqual(['e1', 'e1']);
  });

  it('drops a batch answered 400 without retrying, and keeps sending later events', async () => {
    server.answer = (request) => (request.body.batch.some((e) => e.uuid === 'e1') ? 400 : 200);
    const s = sender({ retryCount: 3, retryDelayMs: 10 });
    s.enqueue(event(1));
    await waitFor(() => server.requests.length === 1);
    await sleep(200); // longer than every retry delay together (10 + 20 + 40)
    expect(server.requests).toHaveLength(1);
    expect(s.pending).toBe(0);

    s.enqueue(event(2));
    await waitFor(() => server.requests.length === 2);
    expect(server.uuids([1])).toEqual(['e2']);
  });

  it.each([401, 403, 404])('does not retry a %i either', async (status) => {
    server.answer = () => status;
    const s = sender({ retryDelayMs: 10 });
    s.enqueue(event(1));
    await waitFor(() => server.requests.length === 1);
    await sleep(150);
    expect(server.requests).toHaveLength(1);
  });

  it('splits a batch answered 413 until the parts fit, delivering each event once', async () => {
    server.answer = (request) => (request.body.batch.length > 2 ? 413 : 200);
    const s = sender({ flushAt: 7, flushIntervalMs: 60_000 });
    const all = Array.from({ length: 7 }, (_, i) => event(i));
    for (const e of all) s.enqueue(e);
    await waitFor(
      () =>
        server.requests
          .filter((r) => r.body.batch.length <= 2)
          .map((r) => r.body.batch.length)
          .reduce((a, b) => a + b, 0) >= 7,
    );
    await sleep(50);

    const accepted = server.requests.filter((r) => r.body.batch.length <= 2);
    const rejected = server.requests.filter((r) => r.body.batch.length > 2);
    expect(rejected[0].body.batch).toHaveLength(7);
    expect(rejected.length).toBeGreaterThanOrEqual(3); // 7 → 4 + 3, each still too big
    expect(accepted.flatMap((r) => r.body.batch.map((e) => e.uuid))).toEqual(all.map((e) => e.uuid));
  });

  it('drops a single event answered 413 without retrying', async () => {
    server.answer = () => 413;
    const s = sender({ retryDelayMs: 10 });
    s.enqueue(event(1));
    await waitFor(() => server.requests.length === 1);
    await sleep(150);
    expect(server.requests).toHaveLength(1);
  });

  it('bounds the queue, dropping the oldest events while the server hangs', async () => {
    server.answer = (_request, index) => (index === 0 ? 'hang' : 200);
    const s = sender({ maxQueueSize: 5, flushAt: 1, requestTimeoutMs: 10_000 });
    for (let i = 0; i < 12; i++) s.enqueue(event(i));
    await waitFor(() => server.requests.length === 1);

    // One batch is in flight, at most maxQueueSize events wait behind it.
    const inFlight = server.uuids([0]);
    expect(inFlight).toEqual(['e0']);
    expect(s.pending).toBeLessThanOrEqual(5);

    server.release(200);
    await s.flush();
    await waitFor(() => server.requests.length >= 2);
    const delivered = server.uuids();
    expect(delivered).toEqual(['e0', 'e7', 'e8', 'e9', 'e10', 'e11']);
  });

  it('shutdown(timeoutMs) resolves within about the timeout when the server never answers', async () => {
    server.answer = () => 'hang';
    const s = sender({ requestTimeoutMs: 60_000, retryCount: 5, retryDelayMs: 1000 });
    s.enqueue(event(1));
    s.enqueue(event(2));
    await waitFor(() => server.requests.length === 1);

    const timeoutMs = 300;
    const started = Date.now();
    await expect(s.shutdown(timeoutMs)).resolves.toBeUndefined();
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(timeoutMs - 50);
    expect(elapsed).toBeLessThan(3 * timeoutMs);
    expect(s.pending).toBe(0);

    // The in-flight request was aborted; nothing is retried after shutdown.
    await waitFor(() => server.hanging.size === 0, 2000);
    await sleep(100);
    expect(server.requests).toHaveLength(1);
  });

  it('shutdown delivers what waits when the server is healthy, then refuses new events', async () => {
    const s = sender({ flushAt: 100, flushIntervalMs: 60_000 });
    s.enqueue(event(1));
    s.enqueue(event(2));
    s.enqueue(event(3));
    await s.shutdown(2000);
    expect(server.uuids()).toEqual(['e1', 'e2', 'e3']);

    s.enqueue(event(4));
    expect(s.pending).toBe(0);
    await s.flush();
    await sleep(50);
    expect(server.requests).toHaveLength(1);
  });

  it('gives each delivery an overall deadline: a trickling answer is cut off, its socket destroyed, and delivery resumes', async () => {
    server.answer = (_request, index) => (index < 2 ? 'trickle' : 200);
    // The idle timeout alone never fires: a byte arrives every 20 ms.
    const s = sender({ requestTimeoutMs: 300, retryCount: 5, retryDelayMs: 10 });
    s.enqueue(event(1));
    await waitFor(() => server.requests.length === 3, 5000);
    expect(server.uuids([2])).toEqual(['e1']);
    // The trickling exchanges were ended from the sender's side.
    await waitFor(() => server.hanging.size === 0, 2000);
    s.enqueue(event(2));
    await waitFor(() => server.requests.length === 4);
    expect(server.uuids([3])).toEqual(['e2']);
  });

  it('a 413 to every batch: splitting stops at single events, far fewer than 2n-1 POSTs, one warning with the right reason', async () => {
    server.answer = () => 413;
    const n = 64;
    const s = sender({ flushAt: n, flushIntervalMs: 60_000, maxBatchSize: n });
    for (let i = 0; i < n; i++) s.enqueue(event(i));
    await waitFor(() => s.drops.totals.get('too-large') === n, 5000);
    // 64 → 32 → … → 1 is 7 POSTs; then a single is only tried when its body is smaller than every refused one.
    expect(server.requests.length).toBeLessThan(2 * Math.log2(n) + 10);
    await sleep(20);
    const lines = warn.mock.calls.map(([m]: unknown[]) => String(m));
    expect(lines.filter((m: string) => /Dropped/.test(m))).toEqual([
      expect.stringMatching(/^Dropped \d+ telemetry event\(s\): PostHog answered 413 \(Content Too Large\) to a single event/),
    ]);
    expect(lines.some((m: string) => /API key/.test(m))).toBe(false);

    // Another such batch within the minute: no POST for bodies as large as refused ones, no new line.
    const before = server.requests.length;
    for (let i = 0; i < n; i++) s.enqueue(event(1000 + i));
    await waitFor(() => s.drops.totals.get('too-large') === 2 * n, 5000);
    expect(server.requests.length - before).toBeLessThan(10);
    expect(warn.mock.calls.filter(([m]: unknown[]) => /Dropped/.test(String(m)))).toHaveLength(1);
  });

  it('a refusal (400) of every batch logs one line per minute, not one per batch', async () => {
    server.answer = () => 400;
    const s = sender({ retryDelayMs: 10 });
    for (let i = 0; i < 5; i++) {
      s.enqueue(event(i));
      await waitFor(() => server.requests.length === i + 1);
    }
    await sleep(20);
    const lines = warn.mock.calls.map(([m]: unknown[]) => String(m));
    expect(lines).toEqual([expect.stringMatching(/^Dropped \d+ telemetry event\(s\): PostHog refused them with 400/)]);
    expect(s.drops.totals.get('refused-400')).toBe(5);
  });

  it('bounds the queue in bytes: the oldest go, the bytes held never exceed maxQueueBytes', async () => {
    server.answer = () => 'hang';
    const one = JSON.stringify(event(10)).length;
    const s = sender({ maxQueueSize: 1000, maxQueueBytes: 20 * one, flushAt: 1000, flushIntervalMs: 60_000 });
    for (let i = 10; i < 100; i++) s.enqueue(event(i));
    expect(s.queuedBytes).toBeLessThanOrEqual(20 * one);
    expect(s.budget.peakBytes).toBeLessThanOrEqual(20 * one);
    expect(s.pending).toBe(20);
    expect(s.drops.totals.get('queue-full')).toBe(70);
    server.answer = () => 200;
    await s.flush();
    expect(server.uuids()).toEqual(Array.from({ length: 20 }, (_, i) => `e${80 + i}`));
  });

  it('drops an event larger than the whole byte budget, and keeps the rest', async () => {
    const s = sender({ maxQueueBytes: 2000, flushAt: 100, flushIntervalMs: 60_000 });
    s.enqueue({ ...event(1), properties: { big: 'x'.repeat(5000) } });
    s.enqueue(event(2));
    await s.flush();
    expect(server.uuids()).toEqual(['e2']);
    expect(s.drops.totals.get('over-budget')).toBe(1);
  });

  it('shares the byte budget with another queue: the one holding the most gives up its oldest', async () => {
    server.answer = () => 'hang';
    const one = JSON.stringify(event(10)).length;
    const { QueueBudget } = await import('./queue-budget.js');
    const budget = new QueueBudget(10 * one);
    const other = { queuedBytes: 8 * one, evictOldest: () => ((other.queuedBytes -= one), one) };
    budget.join(other);
    const s = sender({ budget, maxQueueSize: 1000, flushAt: 1000, flushIntervalMs: 60_000 });
    for (let i = 10; i < 20; i++) s.enqueue(event(i));
    expect(budget.usedBytes).toBeLessThanOrEqual(10 * one);
    expect(budget.peakBytes).toBeLessThanOrEqual(10 * one);
    // Each side ends with about half (ties go either way).
    expect(other.queuedBytes).toBeGreaterThanOrEqual(4 * one);
    expect(other.queuedBytes).toBeLessThanOrEqual(5 * one);
    expect(s.pending).toBeGreaterThanOrEqual(5);
    expect(s.pending).toBeLessThanOrEqual(6);
  });

  it('keeps each request under MAX_BATCH_BYTES of JSON, a larger single event going alone', async () => {
    const s = sender({
      flushAt: 1000,
      flushIntervalMs: 60_000,
      maxBatchSize: 1000,
      maxQueueSize: 1000,
      maxQueueBytes: 16 * MAX_BATCH_BYTES,
    });
    const big = (i: number, bytes: number) => ({ ...event(i), properties: { pad: 'x'.repeat(bytes) } });
    s.enqueue(big(0, MAX_BATCH_BYTES + 10));
    for (let i = 1; i <= 40; i++) s.enqueue(big(i, 100_000));
    await s.flush();
    const sizes = server.requests.map((r) => r.body.batch.reduce((sum, e) => sum + JSON.stringify(e).length, 0));
    expect(server.requests[0].body.batch.map((e) => e.uuid)).toEqual(['e0']);
    for (const size of sizes.slice(1)) expect(size).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    expect(server.uuids()).toEqual(Array.from({ length: 41 }, (_, i) => `e${i}`));
  });

  it('shutdown wakes a batch sleeping in its retry backoff and tries at once', async () => {
    let down = true;
    server.answer = () => (down ? 503 : 200);
    const s = sender({ retryCount: 1, retryDelayMs: 20_000, flushAt: 1000, flushIntervalMs: 10, maxBatchSize: 1000, maxQueueSize: 20_000 });
    for (let i = 0; i < 3000; i++) s.enqueue(event(i));
    await waitFor(() => server.requests.length === 1);
    await sleep(50); // now asleep for 20 s
    down = false;
    // Far less than the backoff: only a woken sender delivers within it.
    await s.shutdown(3000);
    expect(new Set(server.uuids(server.requests.map((_, i) => i).slice(1))).size).toBe(3000);
    expect(warn.mock.calls.filter(([m]: unknown[]) => /Shutdown timed out/.test(String(m)))).toHaveLength(0);
  });
});

describe('PostHogBatchSender and its sending thread', () => {
  beforeEach(() => {
    fromThread = true;
  });

  it('goes on from the main thread when its sending thread dies, losing nothing', async () => {
    const s = sender();
    s.enqueue(event(0));
    await s.flush();
    const thread = (s as unknown as { thread: { worker: { terminate(): Promise<number> } } }).thread;
    await thread.worker.terminate();
    for (let i = 1; i <= 5; i++) s.enqueue(event(i));
    await s.flush();
    await waitFor(() => server.uuids().length === 6);
    expect(server.uuids()).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'e5']);
  });
});

import type { INestApplication } from '@nestjs/common';
import { Agent, get as httpGet } from 'node:http';
import { performance } from 'node:perf_hooks';
import { POSTHOG_CLIENT } from 'nestjs-posthog-telemetry';
import { RecordingLogger } from '../support/recording-logger.js';
import { CaptureServer } from '../support/capture-server.js';
import { createTestApp, sendingTo } from '../support/test-app.js';
import { FaultReport } from './fault-report.js';

/**
 * The sender against a PostHog that trickles, refuses every batch as too large, never reads, or is down for
 * long, and at shutdown after an outage (issues 12 and 13). Speed and memory are figures printed in the table,
 * not timed assertions; what is asserted is delivery, the log lines and the byte accounting.
 */

const report = new FaultReport('sender');
const EVENT_SINK = Symbol.for('nestjs-posthog-telemetry.event-sink');

const baseOf = (app: INestApplication) => `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

// node:http with a keep-alive agent rather than fetch: light enough that the memory figures are the app's.
const agent = new Agent({ keepAlive: true, maxSockets: 16 });
afterAll(() => agent.destroy());

function get(base: string, path: string, requestId: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(base + path, { agent, headers: { 'X-Request-ID': requestId } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Sends `total` requests over `concurrency` connections; `path(n)` picks each one's route and `expect(n)` its status. */
async function load(
  base: string,
  total: number,
  path: (n: number) => string,
  expected: (n: number) => number,
  prefix: string,
  concurrency = 16,
): Promise<number> {
  let next = 0;
  let wrong = 0;
  const worker = async () => {
    while (next < total) {
      const n = next++;
      if ((await get(base, path(n), `${prefix}-${n}`)) !== expected(n)) wrong++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return wrong;
}

/** `gc()` of `--expose-gc`, with V8's options where the version takes them (older ones ignore them). */
type Gc = (options?: { type: 'major'; execution: 'sync'; flavor?: 'regular' | 'last-resort' }) => void;

/** The smallest RSS over up to 5 s: V8 returns the pages a collection freed from background threads. */
async function settledRss(): Promise<number> {
  let rss = process.memoryUsage().rss;
  for (let i = 0; i < 25; i++) {
    await sleep(200);
    const now = process.memoryUsage().rss;
    const settled = rss - now < 2 ** 20;
    rss = Math.min(rss, now);
    if (settled) break;
  }
  return rss;
}

/**
 * RSS and heap in MiB once RSS settled after a memory-reducing collection (what V8 does under memory
 * pressure): what the process holds. `pooledRss`: after two ordinary collections, before that one. Since
 * Node 22, V8 keeps the pages an ordinary collection frees in a pool for its next allocations, and after a
 * burst of garbage that pool can be hundreds of MiB; it is given back on a memory-reducing collection.
 */
async function memory(): Promise<{ rss: number; pooledRss: number; heap: number }> {
  const gc = (globalThis as { gc?: Gc }).gc;
  gc?.();
  gc?.();
  const pooledRss = await settledRss();
  gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  const rss = await settledRss();
  return { rss: rss / 2 ** 20, pooledRss: pooledRss / 2 ** 20, heap: process.memoryUsage().heapUsed / 2 ** 20 };
}

interface Budgeted {
  budget: { maxBytes: number; peakBytes: number; usedBytes: number; drops: { totals: Map<string, number> } };
}

describe('PostHog trickles its answer', () => {
  it('every delivery has an overall deadline: the stuck socket is destroyed and delivery resumes after recovery', async () => {
    const capture = await new CaptureServer().start();
    const logger = new RecordingLogger();
    const app = await createTestApp(
      'express',
      sendingTo(capture.url, {
        shutdownTimeoutMs: 5000,
        posthogOptions: { flushAt: 20, flushInterval: 50, requestTimeout: 1000, fetchRetryDelay: 100 },
      }),
      { logger },
    );
    try {
      capture.behaviour = { kind: 'trickle', everyMs: 50 };
      const total = 200;
      const wrong = await load(
        baseOf(app),
        total,
        () => '/items/1',
        () => 200,
        'trickle',
        8,
      );
      await sleep(1500); // several deliveries stuck on trickling answers
      capture.behaviour = { kind: 'ok' };
      const recovered = performance.now();
      const delivered = () =>
        new Set(
          capture
            .eventsNamed('api_request', (e) => String(e.properties.request_id).startsWith('trickle-'))
            .map((e) => e.properties.request_id),
        ).size;
      await capture.waitFor(() => delivered() === total, 30_000).catch(() => undefined);
      const afterMs = performance.now() - recovered;
      report.add({
        fault: 'PostHog trickles its answers a byte at a time, then recovers',
        requestsSent: total,
        answeredWrongly: wrong,
        eventsExpected: total,
        eventsDelivered: delivered(),
        note: `${delivered()} of ${total} delivered ${(afterMs / 1000).toFixed(1)} s after recovery (requestTimeout 1000 ms is the whole exchange's deadline)`,
      });
      expect(wrong).toBe(0);
      expect(delivered()).toBe(total);
    } finally {
      await app.close();
      await capture.stop();
    }
  });
});

describe('PostHog answers 413 to every batch', () => {
  it('one warning per kind a minute, splitting stops at single events, far fewer than 2n-1 POSTs', async () => {
    const capture = await new CaptureServer().start();
    const logger = new RecordingLogger();
    const flushAt = 50;
    const app = await createTestApp(
      'express',
      sendingTo(capture.url, { captureExceptions: false, posthogOptions: { flushAt, flushInterval: 50 } }),
      { logger },
    );
    try {
      capture.behaviour = { kind: 'limit', maxBytes: 10 };
      const total = 2000;
      const wrong = await load(
        baseOf(app),
        total,
        () => '/items/1',
        () => 200,
        'too-large',
      );
      const sink = app.get(EVENT_SINK, { strict: false }) as Budgeted;
      await sleep(500);
      await capture.waitFor(() => (sink.budget.drops.totals.get('too-large') ?? 0) >= total, 30_000).catch(() => undefined);
      const dropLines = logger.count(/Dropped \d+ telemetry event/);
      const posts = capture.requests;
      report.add({
        fault: `PostHog answers 413 to every batch (${total} requests)`,
        requestsSent: total,
        answeredWrongly: wrong,
        eventsExpected: 0,
        eventsDelivered: capture.events.length,
        note: `${posts} POSTs for ${total} events (splitting every batch down to single events would take 2n−1 POSTs per n-event batch); ${dropLines} "Dropped" line(s); reason: ${logger.entries.find((e) => /Dropped/.test(e.message))?.message ?? 'none'}`,
      });
      expect(wrong).toBe(0);
      expect(sink.budget.drops.totals.get('too-large')).toBe(total);
      expect(dropLines).toBe(1);
      expect(logger.count(/API key/)).toBe(0);
      expect(posts).toBeLessThan(total / 2);
    } finally {
      await app.close();
      await capture.stop();
    }
  });
});

describe('posthogOptions.disabled', () => {
  it('turns everything off: nothing reaches PostHog, the app answers as usual', async () => {
    const capture = await new CaptureServer().start();
    const app = await createTestApp('express', sendingTo(capture.url, { posthogOptions: { disabled: true } }));
    let wrong = 0;
    try {
      wrong += await load(
        baseOf(app),
        30,
        (n) => (n % 3 === 0 ? '/errors/connection' : '/items/1'),
        (n) => (n % 3 === 0 ? 500 : 200),
        'disabled',
        4,
      );
      await app.get(POSTHOG_CLIENT).flush();
      await sleep(300);
    } finally {
      await app.close();
    }
    report.add({
      fault: 'posthogOptions.disabled: true',
      requestsSent: 30,
      answeredWrongly: wrong,
      eventsExpected: 0,
      eventsDelivered: capture.events.length,
      note: `${capture.requests} request(s) reached PostHog`,
    });
    await capture.stop();
    expect(wrong).toBe(0);
    expect(capture.requests).toBe(0);
  });
});

describe('shutdown after an outage', () => {
  it('wakes the sender from its retry backoff and flushes 10 000 queued events once PostHog answers', async () => {
    const capture = await new CaptureServer().start();
    const logger = new RecordingLogger();
    const queued = 10_000;
    const app = await createTestApp(
      'express',
      sendingTo(capture.url, { shutdownTimeoutMs: 5000, posthogOptions: { flushAt: 1000, flushInterval: 100, maxQueueSize: 20_000 } }),
      { logger },
    );
    // One real event from a request, then copies of it straight into the sink: a queue of 10 000 in a second.
    await get(baseOf(app), '/items/1', 'template');
    await capture.waitFor((events) => events.some((e) => e.properties.request_id === 'template'));
    const template = capture.forRequest('template')[0];
    capture.reset();
    capture.behaviour = { kind: 'status', status: 503 };
    const sink = app.get(EVENT_SINK, { strict: false }) as { enqueue(e: unknown): void; pending: number };
    for (let i = 0; i < queued; i++)
      sink.enqueue({ ...template, uuid: undefined, properties: { ...template.properties, request_id: `queued-${i}` } });
    // The first batches fail and the sender goes to sleep for its backoff (1 s, doubling: 1 + 2 + 4 s by now at most).
    await capture.waitFor(() => capture.requests >= 2, 10_000);
    await sleep(300);
    capture.behaviour = { kind: 'ok' };
    const started = performance.now();
    await app.close();
    const closeMs = performance.now() - started;
    const delivered = new Set(capture.events.map((e) => e.properties.request_id).filter((id) => String(id).startsWith('queued-'))).size;
    report.add({
      fault: `shutdown with ${queued} events queued after PostHog answered 503, then recovered`,
      requestsSent: 1,
      answeredWrongly: 0,
      eventsExpected: queued,
      eventsDelivered: delivered,
      note: `app.close() took ${closeMs.toFixed(0)} ms (shutdownTimeoutMs 5000; goal: flushed in ≤ 2 s once PostHog answers)`,
    });
    await capture.stop();
    expect(delivered).toBe(queued);
    expect(logger.count(/Shutdown timed out/)).toBe(0);
  });
});

const RSS_SCALE = Number(process.env.FAULT_RSS_SCALE ?? 1);

describe('memory in long outages', () => {
  it('PostHog never reading, a fifth of the requests failing ($exception each): the byte budget holds, RSS grows at most 64 MiB', async () => {
    const capture = await new CaptureServer().start();
    const logger = new RecordingLogger();
    const maxQueueBytes = 8 * 2 ** 20;
    const app = await createTestApp(
      'express',
      sendingTo(capture.url, { maxQueueBytes, posthogOptions: { flushAt: 100, flushInterval: 200, requestTimeout: 2000 } }),
      { logger },
    );
    const total = Math.round(60_000 * RSS_SCALE);
    const path = (n: number) => (n % 5 === 0 ? '/errors/connection' : '/items/1');
    const status = (n: number) => (n % 5 === 0 ? 500 : 200);
    try {
      // Warm-up with PostHog healthy, so the baseline has the app's own steady state.
      await load(baseOf(app), 5000, path, status, 'warm');
      await sleep(500);
      capture.behaviour = { kind: 'never-read' };
      const before = await memory();
      const wrong = await load(baseOf(app), total, path, status, 'never-read');
      const after = await memory();
      const growth = after.rss - before.rss;
      const heapGrowth = after.heap - before.heap;
      const sink = app.get(EVENT_SINK, { strict: false }) as Budgeted;
      const budget = sink.budget;
      const totals = budget.drops.totals;
      const byBound = ['queue-full', 'posthog-queue-full', 'over-budget', 'posthog-too-large'].reduce(
        (sum, kind) => sum + (totals.get(kind) ?? 0),
        0,
      );
      report.add({
        fault: `PostHog never reads during ${total} requests, a fifth failing (maxQueueBytes 8 MiB)`,
        requestsSent: total,
        answeredWrongly: wrong,
        rssGrowthMiB: growth,
        heapGrowthMiB: heapGrowth,
        note: `RSS +${growth.toFixed(1)} MiB (+${(after.pooledRss - before.pooledRss).toFixed(1)} MiB with V8's page pool), heap +${heapGrowth.toFixed(1)} MiB (goal ≤ 64 MiB RSS); queues held at most ${(budget.peakBytes / 2 ** 20).toFixed(2)} MiB of JSON, ${(budget.usedBytes / 2 ** 20).toFixed(2)} MiB at the end; ${byBound} events dropped by the bounds (${[...totals].map(([kind, n]) => `${kind} ${n}`).join(', ')}); ${logger.count(/Dropped \d+ telemetry event/)} "Dropped" line(s); ${capture.requests} request(s) reached PostHog`,
      });
      expect(wrong).toBe(0);
      expect(budget.peakBytes).toBeLessThanOrEqual(maxQueueBytes);
      // The $exceptions wait in the module's bounded queue, not in posthog-node's: the oldest events went, counted.
      expect(byBound).toBeGreaterThan(0);
      expect(totals.get('posthog-queue-full') ?? 0).toBe(0);
      expect(growth).toBeLessThanOrEqual(64);
      capture.behaviour = { kind: 'ok' };
    } finally {
      await app.close();
      await capture.stop();
    }
  }, 900_000);

  it('PostHog down (refusing connections) for 100 000 requests on the success path', async () => {
    const capture = await new CaptureServer().start();
    const app = await createTestApp(
      'express',
      sendingTo(capture.url, { posthogOptions: { flushAt: 100, flushInterval: 200, requestTimeout: 1000 } }),
    );
    const total = Math.round(100_000 * RSS_SCALE);
    try {
      await load(
        baseOf(app),
        5000,
        () => '/items/1',
        () => 200,
        'warm',
      );
      await sleep(500);
      await capture.stop();
      const before = await memory();
      const wrong = await load(
        baseOf(app),
        total,
        () => '/items/1',
        () => 200,
        'down',
      );
      const after = await memory();
      const growth = after.rss - before.rss;
      const heapGrowth = after.heap - before.heap;
      const budget = (app.get(EVENT_SINK, { strict: false }) as Budgeted).budget;
      report.add({
        fault: `PostHog down during ${total} requests, none failing (default maxQueueBytes 8 MiB, maxQueueSize 10 000)`,
        requestsSent: total,
        answeredWrongly: wrong,
        rssGrowthMiB: growth,
        heapGrowthMiB: heapGrowth,
        note: `RSS +${growth.toFixed(1)} MiB (+${(after.pooledRss - before.pooledRss).toFixed(1)} MiB with V8's page pool; goal ≤ 32 MiB); queues held at most ${(budget.peakBytes / 2 ** 20).toFixed(2)} MiB of JSON`,
      });
      expect(wrong).toBe(0);
      expect(budget.peakBytes).toBeLessThanOrEqual(budget.maxBytes);
    } finally {
      await app.close();
    }
  }, 900_000);
});

import { Controller, Get, type INestApplication } from '@nestjs/common';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { POSTHOG_CLIENT, TelemetryService, type TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import { createBareApp } from '../support/bare-app.js';
import { freePort, RecordingLogger } from '../support/recording-logger.js';
import { CaptureServer, type CaptureBehaviour } from '../support/capture-server.js';
import { createTestApp, sendingTo } from '../support/test-app.js';
import { FaultReport } from './fault-report.js';

/**
 * What telemetry's failures must never do: change a response, delay it, crash
 * the app, or lose events that a short outage or a shutdown should keep. The
 * real posthog-node client and the module's sender talk to a capture server on
 * 127.0.0.1 that misbehaves on demand. Express only: the sender and the request
 * path under test are the same for both adapters (the e2e suite covers both).
 */

const report = new FaultReport('outages');

interface Call {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: unknown;
  /** Events the module sends for it. */
  events: string[];
}

/** One visit of the demo: plain, parameterised, failing, guarded and service-capturing routes. */
const VISIT: Call[] = [
  { method: 'GET', path: '/items/1', events: ['api_request'] },
  { method: 'GET', path: '/items/99', events: ['api_request', 'api_error'] },
  { method: 'GET', path: '/errors/quota', events: ['api_request', 'api_error'] },
  { method: 'GET', path: '/me', headers: { Authorization: 'Bearer user_7' }, events: ['api_request'] },
  { method: 'GET', path: '/admin', events: ['api_request', 'api_error'] },
  { method: 'POST', path: '/chat', body: { message: 'hi' }, events: ['api_request', 'chat_message_sent'] },
];
const VISITS_PER_PHASE = 5;

interface Answer {
  status: number;
  body: unknown;
  ms: number;
}

async function call(base: string, c: Call, requestId?: string): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(base + c.path, {
    method: c.method,
    headers: {
      ...(c.headers ?? {}),
      ...(requestId ? { 'X-Request-ID': requestId } : {}),
      ...(c.body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: c.body ? JSON.stringify(c.body) : undefined,
  });
  const text = await res.text();
  const body = text ? JSON.parse(text) : null;
  // The chat reply echoes the request id, which differs per request by design.
  if (body && typeof body === 'object' && 'request_id' in body) delete body.request_id;
  return { status: res.status, body, ms: performance.now() - started };
}

const baseOf = (app: INestApplication) => `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;

function heapMiB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

describe('PostHog failing', () => {
  let capture: CaptureServer;
  let app: INestApplication;
  let bare: INestApplication;
  /** What the app answers with PostHog healthy, per call, and how fast at worst. */
  let reference: Answer[];
  let referenceWorstMs: number;

  const options: TelemetryModuleOptions = {
    shutdownTimeoutMs: 3000,
    posthogOptions: { flushAt: 5, flushInterval: 50, requestTimeout: 1000, fetchRetryDelay: 100 },
  };

  /** Sends VISITS_PER_PHASE visits with ids `<label>-<n>`; returns the answers and the events to expect. */
  async function phase(label: string) {
    const answers: Answer[] = [];
    const expected: [string, string][] = [];
    for (let v = 0; v < VISITS_PER_PHASE; v++) {
      for (const [i, c] of VISIT.entries()) {
        const id = `${label}-${v}-${i}`;
        answers.push(await call(baseOf(app), c, id));
        for (const event of c.events) expected.push([id, event]);
      }
    }
    const wrong = answers.filter(
      (a, n) =>
        a.status !== reference[n % VISIT.length].status || JSON.stringify(a.body) !== JSON.stringify(reference[n % VISIT.length].body),
    ).length;
    return { answers, expected, wrong, worstMs: Math.max(...answers.map((a) => a.ms)) };
  }

  const delivered = (expected: [string, string][]) =>
    expected.filter(([id, event]) => capture.events.some((e) => e.event === event && e.properties.request_id === id)).length;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    app = await createTestApp('express', sendingTo(capture.url, options));
    bare = await createBareApp('express');
    // The reference answers come from Nest without the module; the worst latency from the module with PostHog healthy.
    reference = [];
    for (const c of VISIT) reference.push(await call(baseOf(bare), c));
    const healthy = await phase('healthy');
    referenceWorstMs = healthy.worstMs;
    expect(healthy.wrong).toBe(0);
    await capture.waitFor(() => delivered(healthy.expected) === healthy.expected.length);
  });

  afterAll(async () => {
    await app?.close();
    await bare?.close();
    await capture.stop();
  });

  const behaviour = (b: CaptureBehaviour) => async () => {
    capture.behaviour = b;
  };
  const healthy = behaviour({ kind: 'ok' });

  it.each<[string, () => Promise<void>, () => Promise<void>]>([
    ['PostHog refuses connections', () => capture.stop(), () => capture.start(capture.port).then(() => undefined)],
    ['PostHog answers 500', behaviour({ kind: 'status', status: 500 }), healthy],
    ['PostHog answers 413 to batches over 1500 bytes', behaviour({ kind: 'limit', maxBytes: 1500 }), healthy],
    ['PostHog answers after 3 s', behaviour({ kind: 'delay', ms: 3000 }), healthy],
    ['PostHog hangs', behaviour({ kind: 'hang' }), healthy],
  ])('%s: every answer as without telemetry, none delayed, every event delivered after recovery', async (fault, inject, recover) => {
    await inject();
    const label = fault.replace(/\W+/g, '-');
    const { expected, wrong, worstMs, answers } = await phase(label);
    await recover();
    await capture.waitFor(() => delivered(expected) === expected.length, 30_000).catch(() => undefined);
    const got = delivered(expected);
    report.add({
      fault,
      requestsSent: answers.length,
      answeredWrongly: wrong,
      eventsExpected: expected.length,
      eventsDelivered: got,
      note: `slowest answer ${worstMs.toFixed(0)} ms (healthy: ${referenceWorstMs.toFixed(0)} ms)`,
    });
    expect(wrong).toBe(0);
    // Not a speed goal: the faults delay PostHog by seconds, so a request that waited on it would show here.
    expect(worstMs).toBeLessThan(referenceWorstMs + 1000);
    expect(got).toBe(expected.length);
  });
});

describe('a short outage with the default retry settings', () => {
  it('loses no event', async () => {
    const capture = await new CaptureServer().start();
    // Only the batching is shortened; retries keep their defaults (1 s, doubling).
    const app = await createTestApp('express', sendingTo(capture.url, { posthogOptions: { flushAt: 5, flushInterval: 50 } }));
    try {
      capture.behaviour = { kind: 'status', status: 503 };
      const ids = Array.from({ length: 30 }, (_, i) => `outage-${i}`);
      let wrong = 0;
      for (const id of ids) if ((await call(baseOf(app), VISIT[0], id)).status !== 200) wrong++;
      setTimeout(() => (capture.behaviour = { kind: 'ok' }), 1500);
      const delivered = () => ids.filter((id) => capture.forRequest(id).length > 0).length;
      await capture.waitFor(() => delivered() === ids.length, 20_000).catch(() => undefined);
      report.add({
        fault: 'PostHog down for 1.5 s (503), default retries',
        requestsSent: ids.length,
        answeredWrongly: wrong,
        eventsExpected: ids.length,
        eventsDelivered: delivered(),
      });
      expect(wrong).toBe(0);
      expect(delivered()).toBe(ids.length);
    } finally {
      await app.close();
      await capture.stop();
    }
  });
});

describe('sustained load while PostHog is down', () => {
  it('keeps memory bounded: a capped queue, oldest dropped, one log line a minute', async () => {
    const capture = await new CaptureServer().start();
    const logger = new RecordingLogger();
    const maxQueueSize = 500;
    const app = await createTestApp(
      'express',
      sendingTo(capture.url, {
        posthogOptions: { flushAt: 50, flushInterval: 50, maxQueueSize, requestTimeout: 500, fetchRetryDelay: 200 },
      }),
      { logger },
    );
    const total = 5000;
    let wrong = 0;
    try {
      await capture.stop();
      const before = heapMiB();
      let next = 0;
      const worker = async () => {
        while (next < total) {
          const n = next++;
          const answer = await call(baseOf(app), VISIT[0], `load-${n}`);
          if (answer.status !== 200) wrong++;
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      const growth = heapMiB() - before;
      const dropLines = logger.count(/Dropped \d+ telemetry event/);
      await capture.start(capture.port);
      const last = `load-${total - 1}`;
      await capture.waitFor(() => capture.forRequest(last).length > 0, 30_000).catch(() => undefined);
      await new Promise((done) => setTimeout(done, 500));
      const deliveredIds = new Set(capture.eventsNamed('api_request').map((e) => e.properties.request_id));
      report.add({
        fault: `PostHog down during ${total} requests (maxQueueSize ${maxQueueSize})`,
        requestsSent: total,
        answeredWrongly: wrong,
        eventsExpected: maxQueueSize,
        eventsDelivered: deliveredIds.size,
        heapGrowthMiB: growth,
        note: `newest events kept, oldest dropped; ${dropLines} "Dropped" log line(s) during the outage`,
      });
      expect(wrong).toBe(0);
      expect(growth).toBeLessThan(32);
      // The newest events survive; what was kept is the queue plus at most the batch in flight.
      expect(deliveredIds.has(last)).toBe(true);
      expect(deliveredIds.size).toBeGreaterThanOrEqual(maxQueueSize);
      expect(deliveredIds.size).toBeLessThanOrEqual(2 * maxQueueSize);
      expect(dropLines).toBe(1);
    } finally {
      await app.close();
      await capture.stop();
    }
  });
});

/** Routes whose events carry values no serialiser likes. */
@Controller('odd')
class OddPropertiesController {
  constructor(private readonly telemetry: TelemetryService) {}

  @Get()
  odd() {
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    this.telemetry.capture('odd_properties', {
      big: 2n ** 70n,
      circular,
      get boom(): string {
        throw new Error('getter failed');
      },
      symbol: Symbol('s'),
      fn: () => 1,
    });
    return { ok: true };
  }
}

describe("telemetry's own failures", () => {
  const failing = (what: string) => () => {
    throw new Error(`${what} exploded`);
  };

  it.each<[string, TelemetryModuleOptions, RegExp]>([
    ['resolveUser throws', { resolveUser: failing('resolveUser') }, /Telemetry resolveUser failed/],
    ['categorizeError throws', { categorizeError: failing('categorizeError') }, /Telemetry categorizeError failed/],
    ['beforeSend throws', { beforeSend: failing('beforeSend') }, /Telemetry beforeSend failed/],
    ['redact throws', { redact: failing('redact') }, /Telemetry redact failed/],
  ])('%s: answers as without telemetry, the failure logged once', async (fault, hooks, logged) => {
    const capture = await new CaptureServer().start();
    const logger = new RecordingLogger();
    // The bare app first: Nest's logger is process-wide, and the last app created sets it.
    const bare = await createBareApp('express');
    const app = await createTestApp('express', sendingTo(capture.url, hooks), { logger });
    let wrong = 0;
    let sent = 0;
    try {
      for (let v = 0; v < 3; v++) {
        for (const c of VISIT) {
          sent++;
          const [a, b] = [await call(baseOf(app), c), await call(baseOf(bare), c)];
          if (a.status !== b.status || JSON.stringify(a.body) !== JSON.stringify(b.body)) wrong++;
        }
      }
      await app.close();
      const failures = logger.count(/^Telemetry .* failed/);
      report.add({ fault, requestsSent: sent, answeredWrongly: wrong, note: `${failures} failure log line(s)` });
      expect(wrong).toBe(0);
      expect(logger.count(logged)).toBeGreaterThanOrEqual(1);
      // Logged once, however often it failed.
      expect(failures).toBe(1);
    } finally {
      await bare.close();
      await capture.stop();
    }
  });

  it('a capture() with BigInt, circular, throwing-getter, symbol and function values is sent bounded', async () => {
    const capture = await new CaptureServer().start();
    const app = await createTestApp('express', sendingTo(capture.url), { controllers: [OddPropertiesController] });
    try {
      const answer = await call(baseOf(app), { method: 'GET', path: '/odd', events: [] }, 'odd-1');
      await app.close();
      const [event] = capture.eventsNamed('odd_properties');
      report.add({
        fault: 'unserialisable capture() properties',
        requestsSent: 1,
        answeredWrongly: answer.status === 200 ? 0 : 1,
        eventsExpected: 1,
        eventsDelivered: capture.eventsNamed('odd_properties').length,
      });
      expect(answer).toMatchObject({ status: 200, body: { ok: true } });
      expect(event.properties).toMatchObject({
        big: (2n ** 70n).toString(),
        circular: { name: 'loop', self: '[Circular]' },
        boom: '[unreadable]',
        request_id: 'odd-1',
      });
    } finally {
      await capture.stop();
    }
  });

  it('a posthog-node client that throws synchronously leaves requests untouched', async () => {
    const capture = await new CaptureServer().start();
    const logger = new RecordingLogger();
    const bare = await createBareApp('express');
    const app = await createTestApp('express', sendingTo(capture.url), { logger });
    const client = app.get(POSTHOG_CLIENT);
    const explode = () => {
      throw new Error('client exploded');
    };
    // Every way into the client's request context throws: its storage, and its public context methods.
    Object.defineProperty(client, 'context', { get: explode, configurable: true });
    client.enterContext = explode;
    client.withContext = explode;
    let wrong = 0;
    const calls = VISIT.filter((c) => c.path !== '/chat'); // the chat service calls the client itself: the app's own code
    try {
      for (const c of calls) {
        const [a, b] = [await call(baseOf(app), c), await call(baseOf(bare), c)];
        if (a.status !== b.status || JSON.stringify(a.body) !== JSON.stringify(b.body)) wrong++;
      }
      await app.close();
      report.add({ fault: 'posthog-node client throws synchronously', requestsSent: calls.length, answeredWrongly: wrong });
      expect(wrong).toBe(0);
      expect(logger.count(/Telemetry request entry failed/)).toBe(1);
    } finally {
      await bare.close();
      await capture.stop();
    }
  });
});

describe('shutdown of the demo process', () => {
  const main = resolve('dist/apps/demo/src/main.js');

  /** Starts the built demo against `capture`, sends `requests` requests, sends SIGTERM; returns how long exit took. */
  async function runDemo(capture: CaptureServer, requests: number, prefix: string): Promise<{ exitMs: number; wrong: number }> {
    const port = await freePort();
    const child = spawn(process.execPath, [main], {
      env: { ...process.env, POSTHOG_API_KEY: 'phc_sigterm', POSTHOG_HOST: capture.url, PORT: String(port), NODE_ENV: 'test' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    try {
      const deadline = Date.now() + 15_000;
      while (!output.includes('Demo API') && Date.now() < deadline) await new Promise((done) => setTimeout(done, 50));
      expect(output).toContain('Demo API');
      let wrong = 0;
      // Fewer events than one batch (100) and sent within the 1 s interval: they are still queued at SIGTERM.
      for (let i = 0; i < requests; i++) if ((await call(`http://127.0.0.1:${port}`, VISIT[0], `${prefix}-${i}`)).status !== 200) wrong++;
      const started = Date.now();
      child.kill('SIGTERM');
      await exited;
      return { exitMs: Date.now() - started, wrong };
    } finally {
      child.kill('SIGKILL');
    }
  }

  it('SIGTERM delivers every queued event', async () => {
    const capture = await new CaptureServer().start();
    try {
      const { wrong, exitMs } = await runDemo(capture, 30, 'sigterm');
      const delivered = capture.eventsNamed('api_request', (e) => String(e.properties.request_id).startsWith('sigterm-')).length;
      report.add({
        fault: 'SIGTERM with events queued',
        requestsSent: 30,
        answeredWrongly: wrong,
        eventsExpected: 30,
        eventsDelivered: delivered,
        note: `exited ${exitMs} ms after SIGTERM`,
      });
      expect(delivered).toBe(30);
    } finally {
      await capture.stop();
    }
  });

  it('SIGTERM while PostHog hangs exits within shutdownTimeoutMs (5 s by default)', async () => {
    const capture = await new CaptureServer().start();
    capture.behaviour = { kind: 'hang' };
    try {
      const { wrong, exitMs } = await runDemo(capture, 10, 'sigterm-hang');
      report.add({
        fault: 'SIGTERM while PostHog hangs',
        requestsSent: 10,
        answeredWrongly: wrong,
        note: `exited ${exitMs} ms after SIGTERM (bound: 5000 ms + the app's own close)`,
      });
      expect(wrong).toBe(0);
      // A bound, not a speed goal: shutdown must not wait on PostHog beyond its timeout.
      expect(exitMs).toBeLessThan(5000 + 3000);
    } finally {
      await capture.stop();
    }
  });
});

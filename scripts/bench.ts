/**
 * Overhead benchmark: the same Nest app (Express, `GET /items/:id`) without
 * telemetry, with this library's TelemetryModule, and with posthog-node's own
 * PostHogInterceptor plus a hand-written `api_request` capture. Each app runs
 * in its own child process (scripts/bench-app.ts); autocannon and the capture
 * server share this process. Rounds alternate between the apps so that drift
 * of the machine spreads over all modes alike. Only 127.0.0.1 is contacted.
 *
 *   npm run bench                      # 1 warm-up + 5 rounds of 3 s per mode
 *   BENCH_ROUNDS=10 BENCH_SECONDS=5 npm run bench
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { CaptureServer } from '../test/support/capture-server.js';
import type { BenchMode, BenchReply, BenchRequest } from './bench-app.js';

/** The part of autocannon's programmatic API used here (the package ships no types). */
interface AutocannonResult {
  requests: { average: number; sent: number; total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}
type Autocannon = (options: { url: string; connections: number; duration: number; pipelining: number }) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const MODES: BenchMode[] = ['bare', 'module', 'posthog-interceptor'];
/** `properties.environment` of each mode's events: how they are told apart at the capture server. */
const ENVIRONMENT_OF: Record<BenchMode, string> = {
  bare: 'bench-bare',
  module: 'bench',
  'posthog-interceptor': 'bench-posthog-interceptor',
};

function positiveIntFromEnv(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${name} must be an integer from 1 to ${max}, got ${raw}`);
  return n;
}

const ROUNDS = positiveIntFromEnv('BENCH_ROUNDS', 5, 100);
const SECONDS = positiveIntFromEnv('BENCH_SECONDS', 3, 120);
const WARMUP_ROUNDS = 1;
const CONNECTIONS = 16;
/** Generous bounds on each IPC exchange; `app.close()` may wait up to the module's 5 s shutdown timeout. */
const REPLY_TIMEOUT_MS = 15_000;
const SHUTDOWN_TIMEOUT_MS = 60_000;

interface RoundFigures {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  cpuMicros: number;
  handled: number;
}

interface BenchApp {
  mode: BenchMode;
  child: ChildProcess;
  port: number;
  rounds: RoundFigures[];
  /** Requests autocannon sent, warm-up included: what the events are compared against. */
  sent: number;
  /** Requests the app's route served, warm-up included, as counted at shutdown. */
  handled?: number;
  failures: number;
}

/** The next message of the child of the given type, or an error when it exits or takes too long. */
function nextReply<T extends BenchReply['type']>(child: ChildProcess, type: T, timeoutMs: number): Promise<Extract<BenchReply, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no '${type}' from the app within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (message: BenchReply) => {
      if (message.type === type) done(undefined, message as Extract<BenchReply, { type: T }>);
    };
    const onExit = (code: number | null) => done(new Error(`the app exited (code ${code}) while the bench waited for '${type}'`));
    function done(error?: Error, message?: Extract<BenchReply, { type: T }>) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(message!);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

function ask<T extends BenchReply['type']>(app: BenchApp, request: BenchRequest, type: T, timeoutMs = REPLY_TIMEOUT_MS) {
  const reply = nextReply(app.child, type, timeoutMs);
  app.child.send(request);
  return reply;
}

async function startApp(mode: BenchMode, captureUrl: string): Promise<BenchApp> {
  const script = fileURLToPath(new URL('./bench-app.js', import.meta.url));
  const child = fork(script, [mode, captureUrl, ENVIRONMENT_OF[mode]], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await nextReply(child, 'ready', 30_000);
  return { mode, child, port, rounds: [], sent: 0, failures: 0 };
}

/** One answer before any load: the route works and telemetry is (or is not) in the way. */
async function checkApp(app: BenchApp): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${app.port}/items/1`);
  const body = (await response.json()) as { id?: unknown };
  if (response.status !== 200 || body.id !== 1) throw new Error(`${app.mode}: GET /items/1 answered ${response.status} ${JSON.stringify(body)}`);
  app.sent++; // this request is telemetered too
  const hasRequestId = response.headers.has('x-request-id');
  if (hasRequestId !== (app.mode === 'module')) throw new Error(`${app.mode}: X-Request-ID ${hasRequestId ? 'present' : 'missing'}`);
}

async function runRound(app: BenchApp, measured: boolean): Promise<void> {
  await ask(app, { type: 'round-start' }, 'round-started');
  const result = await autocannon({ url: `http://127.0.0.1:${app.port}/items/1`, connections: CONNECTIONS, duration: SECONDS, pipelining: 1 });
  const { cpuMicros, handled } = await ask(app, { type: 'round-end' }, 'round-ended');
  app.sent += result.requests.sent;
  app.failures += result.errors + result.timeouts + result.non2xx;
  if (measured) {
    app.rounds.push({ requestsPerSecond: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, cpuMicros, handled });
  }
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

function printTable(apps: BenchApp[], delivered: Map<BenchMode, number>): void {
  const bareRps = mean(apps.find((a) => a.mode === 'bare')!.rounds.map((r) => r.requestsPerSecond));
  const header = ['mode', 'req/s (mean)', 'req/s min–max', 'p50 ms', 'p99 ms', 'CPU µs/req', 'vs bare', 'events delivered / requests sent'];
  const rows = apps.map((app) => {
    const rps = app.rounds.map((r) => r.requestsPerSecond);
    const events = delivered.get(app.mode);
    return [
      app.mode,
      mean(rps).toFixed(0),
      `${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)}`,
      mean(app.rounds.map((r) => r.p50)).toFixed(2),
      mean(app.rounds.map((r) => r.p99)).toFixed(2),
      // Ratio of sums: rounds with more requests weigh more.
      (sum(app.rounds.map((r) => r.cpuMicros)) / sum(app.rounds.map((r) => r.handled))).toFixed(1),
      (mean(rps) / bareRps).toFixed(3),
      events === undefined ? '—' : `${events} / ${app.sent} (${((100 * events) / app.sent).toFixed(2)}%)`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

async function main(): Promise<void> {
  console.log(`Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), ${os.platform()} ${os.arch()}`);
  console.log(
    `${WARMUP_ROUNDS} warm-up + ${ROUNDS} measured round(s) of ${SECONDS} s per mode, ${CONNECTIONS} keep-alive connections, ` +
      'GET /items/1 on Express; apps in child processes, autocannon and capture server in the bench process',
  );

  const capture = await new CaptureServer(true).start();
  const apps: BenchApp[] = [];
  try {
    for (const mode of MODES) apps.push(await startApp(mode, capture.url));
    for (const app of apps) await checkApp(app);

    for (let round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
      const measured = round >= WARMUP_ROUNDS;
      // Rotate who goes first, so no mode always runs right after the same neighbour.
      const order = apps.map((_, i) => apps[(i + round) % apps.length]);
      for (const app of order) await runRound(app, measured);
      console.log(`${measured ? `round ${round - WARMUP_ROUNDS + 1}/${ROUNDS}` : 'warm-up'} done (${order.map((a) => a.mode).join(', ')})`);
    }

    // `app.close()` delivers what the module's sender and posthog-node still queue.
    for (const app of apps) {
      app.handled = (await ask(app, { type: 'shutdown' }, 'closed', SHUTDOWN_TIMEOUT_MS)).handled;
      if (app.child.exitCode === null) await once(app.child, 'exit');
    }

    const delivered = new Map<BenchMode, number>();
    for (const mode of MODES) {
      if (mode !== 'bare') delivered.set(mode, capture.eventsNamed('api_request', (e) => e.properties?.environment === ENVIRONMENT_OF[mode]).length);
    }
    const unexpected = capture.events.length - sum([...delivered.values()]);

    console.log('');
    printTable(apps, delivered);
    console.log('');
    console.log('req/s, p50 and p99: means over the measured rounds; CPU µs/req: the app process (user + system) over requests its route served.');
    console.log(`Requests served by each app, warm-up included: ${apps.map((a) => `${a.mode} ${a.handled}`).join(', ')}.`);
    if (unexpected !== 0) console.log(`Other events at the capture server: ${unexpected}.`);
    for (const app of apps) {
      if (app.failures > 0) console.log(`WARNING: ${app.mode} had ${app.failures} failed request(s) (errors, timeouts or non-2xx).`);
    }
  } finally {
    for (const app of apps) if (app.child.exitCode === null && app.child.signalCode === null) app.child.kill();
    await capture.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});

/**
 * Overhead benchmark: the same Nest app (`GET /items/:id` answering a small JSON)
 * bare, with this library's TelemetryModule, with posthog-node's own
 * PostHogInterceptor plus a hand-written `api_request` capture, and with
 * @nestjs/observe; on Express and Fastify; under each Node.js version of the
 * matrix (scripts/node-versions.sh). Only 127.0.0.1 is contacted: a loopback
 * PostHog capture server and a loopback observe collector count what arrives.
 *
 * Headline figure: instructions per request, counted by valgrind's callgrind,
 * which repeats within about 0.5% where CPU time and req/s on a shared machine
 * do not. One cell (node × adapter × mode) runs the app (scripts/bench-app.ts)
 * under `valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes`:
 *   1. warm-up: BENCH_WARMUP requests, instrumentation off (the JIT settles);
 *   2. wait until every warm-up event reached the capture server or collector, close the warm-up
 *      sockets, idle BENCH_TAIL_MS. No forced `gc()`: a forced collection makes V8 drop compiled code,
 *      and the window would then measure the JIT compiling the request path again (natively, bare Nest
 *      recompiled 84 to 161 functions in the 5000 requests after one);
 *   3. `callgrind_control -i on`, then exactly BENCH_REQUESTS requests on 4 fresh keep-alive sockets;
 *   4. BENCH_TAIL_MS more, the same for every mode; events sent during the window (a batch leaves
 *      every 100 events, compressed and posted while the next requests run) are inside it, whichever
 *      thread does it. The window does not wait for the last partial batch: waiting held the window
 *      of the sending modes open for seconds longer than bare's, and under valgrind V8's background
 *      compiling and idle-time work during those seconds counted against them (17k instructions per
 *      request in one comparison). Delivery is checked after the window: every event must arrive;
 *   5. `callgrind_control -i off`, dump, kill the app; instructions per request = count ÷ BENCH_REQUESTS,
 *      for thread 1 (the main thread: the event loop, with V8's GC and JIT work under the default
 *      BENCH_V8_FLAGS) and for the other threads summed (libuv's pool, observe's worker thread).
 * "vs bare" is bare's instructions ÷ the mode's (same node and adapter): the share of bare Nest's
 * throughput the mode leaves, for a CPU-bound server.
 *
 * Secondary figures, without valgrind (noisy on a shared machine): all modes of one node × adapter run
 * side by side as child processes; after a BENCH_WARMUP warm-up each, BENCH_ROUNDS rounds of
 * BENCH_ROUND_REQUESTS requests (autocannon, 16 connections) rotate between them; CPU µs per request
 * (process.cpuUsage of the app: all its threads) and req/s are printed as median [min–max].
 *
 * The apps load a copy of libs/telemetry/dist taken when the run starts (scripts/bench-library.ts), so a
 * rebuild during the run changes nothing in it.
 *
 * Results: a table on stdout, bench-results/last.json, and a Markdown table in docs/performance.md
 * between `<!-- bench:start -->` and `<!-- bench:end -->`.
 *
 *   npm run bench                                   # every node × adapter × mode, callgrind and rounds
 *   BENCH_NODES=24 BENCH_ADAPTERS=express BENCH_MODES=bare,module BENCH_ROUNDS=0 npm run bench
 *                                                   # quick: instruction ratios in a few minutes
 *   node dist/scripts/bench.js                      # the same without rebuilding
 *
 * Environment:
 *   BENCH_NODES           Node.js versions, comma list of majors (24) or exact versions (24.22.3);
 *                         default: every version scripts/node-versions.sh lists (fetched when missing)
 *   BENCH_ADAPTERS        express,fastify (default both)
 *   BENCH_MODES           bare,module,posthog-interceptor,observe (default all; bare is added when a
 *                         ratio needs it)
 *   BENCH_CALLGRIND       1 (default) or 0: the instruction counts
 *   BENCH_CALLGRIND_RUNS  callgrind runs per cell (default 1); with more, the median and the spread
 *   BENCH_WARMUP          warm-up requests per app (default 20000: after 5000, much of the request
 *                         path still ran as baseline code in the window)
 *   BENCH_REQUESTS        requests in a callgrind window (default 10000)
 *   BENCH_RENDER          1: measure nothing, render bench-results/last.json (after merging runs by hand)
 *   BENCH_MERGE           1: keep the last run's cells that this run does not measure (bench-results/last.json)
 *   BENCH_TAIL_MS         idle tail before and after a window, ms (default 500)
 *   BENCH_ROUNDS          rounds of the CPU and req/s figures (default 5; 0: none)
 *   BENCH_ROUND_REQUESTS  requests per round (default 10000)
 *   BENCH_MARKDOWN        0: leave docs/performance.md alone; 1: write its table even from a partial run
 *                         (default: written by a full run, or by a partial one with BENCH_MERGE=1)
 *   BENCH_V8_FLAGS        V8 flags of the app under callgrind (default '--predictable-gc-schedule',
 *                         see V8_FLAGS below)
 *   BENCH_KEEP_DUMPS      1: keep each window's callgrind dumps in bench-results/callgrind/ (for
 *                         callgrind_annotate: where the instructions go; JIT code shows as addresses)
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CaptureServer } from '../test/support/capture-server.js';
import {
  BENCH_ADAPTERS,
  BENCH_MODES,
  type BenchAdapter,
  type BenchAppConfig,
  type BenchMode,
  type BenchReply,
  type BenchRequest,
} from './bench-protocol.js';
import { callgrindArgs, callgrindControl, readThreadInstructions, type ThreadInstructions } from './bench-callgrind.js';
import { ObserveCollector } from './bench-collector.js';
import { snapshotLibrary } from './bench-library.js';
import { sendRequests } from './bench-load.js';

/** The part of autocannon's programmatic API used here (the package ships no types). */
interface AutocannonResult {
  requests: { total: number; sent: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}
type Autocannon = (options: { url: string; connections: number; amount: number; pipelining: number }) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP_SCRIPT = fileURLToPath(new URL('./bench-app.js', import.meta.url));
const ROUTE = '/items/1';

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}, got ${raw}`);
  return n;
}

function listFromEnv<T extends string>(name: string, allowed: readonly T[]): T[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return [...allowed];
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`${name}: '${item}' is not one of ${allowed.join(', ')}`);
  return items as T[];
}

const ADAPTERS = listFromEnv<BenchAdapter>('BENCH_ADAPTERS', BENCH_ADAPTERS);
const REQUESTED_MODES = listFromEnv<BenchMode>('BENCH_MODES', BENCH_MODES);
// Ratios are to bare: it runs whenever another mode does.
const MODES = BENCH_MODES.filter((m) => REQUESTED_MODES.includes(m) || (m === 'bare' && REQUESTED_MODES.length > 0));
const CALLGRIND = intFromEnv('BENCH_CALLGRIND', 1, 0, 1) === 1;
const CALLGRIND_RUNS = intFromEnv('BENCH_CALLGRIND_RUNS', 1, 1, 20);
const WARMUP = intFromEnv('BENCH_WARMUP', 20_000, 0, 1_000_000);
const REQUESTS = intFromEnv('BENCH_REQUESTS', 10_000, 1, 1_000_000);
const TAIL_MS = intFromEnv('BENCH_TAIL_MS', 500, 0, 60_000);
const ROUNDS = intFromEnv('BENCH_ROUNDS', 5, 0, 100);
const ROUND_REQUESTS = intFromEnv('BENCH_ROUND_REQUESTS', 10_000, 1, 10_000_000);
const MARKDOWN = intFromEnv('BENCH_MARKDOWN', 1, 0, 1) === 1;
const KEEP_DUMPS = intFromEnv('BENCH_KEEP_DUMPS', 0, 0, 1) === 1;
/**
 * V8 flags of the app under callgrind (BENCH_V8_FLAGS replaces them). Under valgrind the app runs tens of
 * times slower and valgrind serialises its threads, so what V8 decides by the clock or by thread timing
 * differs from window to window: the memory reducer takes the slow allocation rate for idleness and starts
 * full GCs, heap growing follows measured GC speed, a background compile or a parallel scavenge ends at a
 * different point of the main thread's work. A full GC or a TurboFan compile is 5 to 15% of a 1000-request
 * window. `--predictable-gc-schedule` fixes the GC schedule (fixed heap growing, 4 MB semi-spaces, no memory
 * reducer); with the default warm-up and window and no forced collection (step 2), bare Nest's main thread on
 * Node 24 repeated within 0.2% (160.0k, 159.7k) and the module's within 0.6%, with one run in five of the module 3%
 * higher (docs/performance.md, "How far to trust one window"). "main" is the event loop thread; "other" is every
 * other thread: V8's GC and compiler threads, libuv's pool, worker threads such as the module's sending thread
 * (gzip) and observe's. `--single-threaded` (BENCH_V8_FLAGS) puts V8's share on the main thread instead.
 */
const V8_FLAGS = (process.env.BENCH_V8_FLAGS ?? '--predictable-gc-schedule').split(/\s+/).filter(Boolean);
/** BENCH_MERGE=1: cells of the last run (bench-results/last.json) not measured in this one are kept in its table. */
const MERGE = intFromEnv('BENCH_MERGE', 0, 0, 1) === 1;
const CALLGRIND_NODE_FLAGS = [...V8_FLAGS];
/** Keep-alive sockets of the callgrind load; autocannon's for the rounds. */
const CALLGRIND_CONNECTIONS = 4;
const ROUND_CONNECTIONS = 16;
/** Bounds on waits: an app under valgrind starts and answers tens of times slower. */
const READY_TIMEOUT_MS = 300_000;
const REPLY_TIMEOUT_MS = 60_000;
const DELIVERY_TIMEOUT_MS = 120_000;
const CELL_TIMEOUT_MS = 30 * 60_000;

/** Every app process started and not yet gone: killed whatever way the bench ends. */
const live = new Set<ChildProcess>();
function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}
function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Node.js binaries: a major picks the matrix's version of that line. */
function resolveNodes(): { version: string; path: string }[] {
  const script = path.join(ROOT, 'scripts/node-versions.sh');
  const matrix = execFileSync('bash', [script, 'list'], { encoding: 'utf8' }).trim().split('\n');
  const raw = process.env.BENCH_NODES?.trim();
  const wanted = raw
    ? raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : matrix;
  return wanted.map((spec) => {
    const version = /^\d+$/.test(spec) ? matrix.find((v) => v.split('.')[0] === spec) : spec.replace(/^v/, '');
    if (!version) throw new Error(`BENCH_NODES: no version of Node ${spec} in ${matrix.join(', ')}`);
    const nodePath = execFileSync('bash', [script, 'path', version], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    return { version, path: nodePath };
  });
}

/** The next message of the child of the given type, or an error when it exits or takes too long. */
function nextReply<T extends BenchReply['type']>(
  child: ChildProcess,
  type: T,
  timeoutMs: number,
): Promise<Extract<BenchReply, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no '${type}' from the app within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (message: BenchReply) => {
      if (message.type === type) done(undefined, message as Extract<BenchReply, { type: T }>);
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(new Error(`the app exited (${signal ?? `code ${code}`}) while the bench waited for '${type}'`));
    function done(error?: Error, message?: Extract<BenchReply, { type: T }>) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (message) resolve(message);
      else reject(error ?? new Error(`no '${type}'`));
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

function ask<T extends BenchReply['type']>(child: ChildProcess, request: BenchRequest, type: T, timeoutMs = REPLY_TIMEOUT_MS) {
  const reply = nextReply(child, type, timeoutMs);
  child.send(request);
  return reply;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** Where each cell's events land, and how many of them arrived. */
class Sinks {
  capture = new CaptureServer(true);
  collector = new ObserveCollector();
  private counted = 0;
  private byEnvironment = new Map<string, number>();

  async start(): Promise<this> {
    await this.capture.start();
    await this.collector.start();
    return this;
  }

  async stop(): Promise<void> {
    await this.capture.stop();
    await this.collector.stop();
  }

  /** `api_request` events (module, posthog-interceptor) or request snapshots (observe) of `environment`. */
  delivered(mode: BenchMode, environment: string): number {
    if (mode === 'observe') return this.collector.snapshotsOf(environment);
    // Counted incrementally: the capture server decodes each body once.
    const events = this.capture.events;
    for (; this.counted < events.length; this.counted++) {
      const e = events[this.counted];
      if (e.event !== 'api_request') continue;
      const env = String(e.properties?.environment);
      this.byEnvironment.set(env, (this.byEnvironment.get(env) ?? 0) + 1);
    }
    return this.byEnvironment.get(environment) ?? 0;
  }

  /** Waits until `expected` events of `environment` arrived; answers how many did (fewer on timeout). */
  async waitDelivered(mode: BenchMode, environment: string, expected: number): Promise<number> {
    if (mode === 'bare') return 0;
    const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
    while (this.delivered(mode, environment) < expected && Date.now() < deadline) await sleep(20);
    return this.delivered(mode, environment);
  }
}

let environmentCounter = 0;
/** Set once per run: the private copy of the library every app of the run loads. */
let libraryUrl = '';
function appConfig(mode: BenchMode, adapter: BenchAdapter, sinks: Sinks, kind: string): BenchAppConfig {
  return {
    mode,
    adapter,
    captureUrl: sinks.capture.url,
    collectorUrl: sinks.collector.url,
    environment: `bench-${kind}-${adapter}-${mode}-${++environmentCounter}`,
    libraryUrl,
  };
}

/** One answer before any load: the route works and telemetry is (or is not) in the way. Answers the body. */
async function checkApp(mode: BenchMode, port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}${ROUTE}`);
  const text = await response.text();
  const body = JSON.parse(text) as { id?: unknown };
  if (response.status !== 200 || body.id !== 1) throw new Error(`${mode}: GET ${ROUTE} answered ${response.status} ${text}`);
  const hasRequestId = response.headers.has('x-request-id');
  if (mode === 'module' && !hasRequestId) throw new Error('module: no X-Request-ID in the answer');
  if (mode === 'bare' && hasRequestId) throw new Error('bare: an X-Request-ID in the answer');
  return text;
}

interface CallgrindRun {
  /** Instructions per request. */
  main: number;
  other: number;
  total: number;
  threads: ThreadInstructions[];
  delivered: number;
  windowMs: number;
}

interface CallgrindFigures extends CallgrindRun {
  runs: CallgrindRun[];
  /** (max − min) ÷ median of the main thread's figure over the runs, in %. */
  spreadMainPct: number;
  spreadTotalPct: number;
}

interface RoundFigures {
  cpuMicrosPerRequest: number[];
  requestsPerSecond: number[];
  delivered: number;
  expected: number;
  failures: number;
}

interface Cell {
  node: string;
  adapter: BenchAdapter;
  mode: BenchMode;
  callgrind?: CallgrindFigures;
  rounds?: RoundFigures;
  error?: string;
}

async function callgrindRun(nodePath: string, adapter: BenchAdapter, mode: BenchMode, sinks: Sinks): Promise<CallgrindRun> {
  const outDir = await mkdtemp(path.join(os.tmpdir(), 'bench-callgrind-'));
  const config = appConfig(mode, adapter, sinks, 'cg');
  const child = track(
    spawn('valgrind', [...callgrindArgs(outDir), nodePath, ...CALLGRIND_NODE_FLAGS, APP_SCRIPT, JSON.stringify(config)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const watchdog = setTimeout(() => child.kill('SIGKILL'), CELL_TIMEOUT_MS);
  try {
    const { port } = await nextReply(child, 'ready', READY_TIMEOUT_MS);
    const pid = child.pid;
    if (pid === undefined) throw new Error('valgrind did not start');
    const body = await checkApp(mode, port);
    const warm = await sendRequests(port, ROUTE, WARMUP, CALLGRIND_CONNECTIONS, body);
    if (warm.failed > 0) throw new Error(`warm-up: ${warm.failed} failed request(s), first: ${warm.firstFailure}`);
    const before = 1 + WARMUP;
    const deliveredBefore = await sinks.waitDelivered(mode, config.environment, before);
    if (mode !== 'bare' && deliveredBefore < before) throw new Error(`warm-up: ${deliveredBefore} of ${before} events delivered`);
    await sleep(TAIL_MS);

    await callgrindControl(pid, '-i', 'on');
    const startedAt = performance.now();
    const load = await sendRequests(port, ROUTE, REQUESTS, CALLGRIND_CONNECTIONS, body);
    await sleep(TAIL_MS);
    await callgrindControl(pid, '-i', 'off');
    const windowMs = performance.now() - startedAt;
    if (load.failed > 0) throw new Error(`window: ${load.failed} failed request(s), first: ${load.firstFailure}`);
    // Every event of the window delivered, the last partial batch after it (see step 4).
    const deliveredAfter = await sinks.waitDelivered(mode, config.environment, before + REQUESTS);
    await callgrindControl(pid, '-d');
    await stopChild(child);
    if (KEEP_DUMPS) {
      const keep = path.join(
        ROOT,
        'bench-results/callgrind',
        `${path.basename(nodePath === process.execPath ? 'node' : path.dirname(path.dirname(nodePath)))}-${adapter}-${mode}-${Date.now()}`,
      );
      await mkdir(path.dirname(keep), { recursive: true });
      await cp(outDir, keep, { recursive: true });
      console.log(`callgrind dumps kept in ${path.relative(ROOT, keep)} (callgrind_annotate <file>)`);
    }

    const threads = await readThreadInstructions(outDir, pid);
    const main = threads.find((t) => t.thread === 1)?.instructions;
    if (main === undefined) throw new Error(`no dump of the main thread in ${outDir}`);
    const other = threads.filter((t) => t.thread !== 1).reduce((sum, t) => sum + t.instructions, 0);
    return {
      main: main / REQUESTS,
      other: other / REQUESTS,
      total: (main + other) / REQUESTS,
      threads,
      delivered: deliveredAfter - deliveredBefore,
      windowMs,
    };
  } catch (error) {
    const log = await readFile(path.join(outDir, 'valgrind.log'), 'utf8').catch(() => '');
    const tail = log
      .split('\n')
      .filter((l) => !/^==\d+== ?$/.test(l))
      .slice(-15)
      .join('\n');
    throw new Error(`${error instanceof Error ? error.message : String(error)}${tail ? `\nvalgrind.log (end):\n${tail}` : ''}`, {
      cause: error,
    });
  } finally {
    clearTimeout(watchdog);
    await stopChild(child);
    await rm(outDir, { recursive: true, force: true });
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const spreadPct = (values: number[]) => (values.length < 2 ? 0 : (100 * (Math.max(...values) - Math.min(...values))) / median(values));

async function callgrindCell(nodePath: string, adapter: BenchAdapter, mode: BenchMode, sinks: Sinks): Promise<CallgrindFigures> {
  const runs: CallgrindRun[] = [];
  for (let i = 0; i < CALLGRIND_RUNS; i++) runs.push(await callgrindRun(nodePath, adapter, mode, sinks));
  // The run whose main-thread figure is the median stands for the cell.
  const byMain = [...runs].sort((a, b) => a.main - b.main);
  const representative = byMain[(byMain.length - 1) >> 1];
  return {
    ...representative,
    main: median(runs.map((r) => r.main)),
    other: median(runs.map((r) => r.other)),
    total: median(runs.map((r) => r.total)),
    runs,
    spreadMainPct: spreadPct(runs.map((r) => r.main)),
    spreadTotalPct: spreadPct(runs.map((r) => r.total)),
  };
}

interface NativeApp {
  mode: BenchMode;
  child: ChildProcess;
  port: number;
  environment: string;
  /** Requests sent, check and warm-up included: the events expected. */
  sent: number;
  failures: number;
  figures: RoundFigures;
}

/** CPU µs/request and req/s for every mode of one node × adapter, rounds rotating between the modes. */
async function roundsOfGroup(
  nodePath: string,
  adapter: BenchAdapter,
  modes: BenchMode[],
  sinks: Sinks,
): Promise<Map<BenchMode, RoundFigures>> {
  const apps: NativeApp[] = [];
  try {
    for (const mode of modes) {
      const config = appConfig(mode, adapter, sinks, 'rounds');
      const child = track(
        fork(APP_SCRIPT, [JSON.stringify(config)], {
          execPath: nodePath,
          execArgv: [],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        }),
      );
      const { port } = await nextReply(child, 'ready', READY_TIMEOUT_MS);
      apps.push({
        mode,
        child,
        port,
        environment: config.environment,
        sent: 0,
        failures: 0,
        figures: { cpuMicrosPerRequest: [], requestsPerSecond: [], delivered: 0, expected: 0, failures: 0 },
      });
    }
    const load = async (app: NativeApp, amount: number) => {
      const result = await autocannon({
        url: `http://127.0.0.1:${app.port}${ROUTE}`,
        connections: ROUND_CONNECTIONS,
        amount,
        pipelining: 1,
      });
      app.sent += result.requests.sent;
      app.failures += result.errors + result.timeouts + result.non2xx;
    };
    for (const app of apps) {
      await checkApp(app.mode, app.port);
      app.sent++;
      if (WARMUP > 0) await load(app, WARMUP);
    }
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate who goes first, so that no mode always runs right after the same neighbour.
      for (const app of apps.map((_, i) => apps[(i + round) % apps.length])) {
        await ask(app.child, { type: 'round-start' }, 'round-started');
        await load(app, ROUND_REQUESTS);
        const { cpuMicros, handled, busyMs } = await ask(app.child, { type: 'round-end' }, 'round-ended');
        app.figures.cpuMicrosPerRequest.push(cpuMicros / handled);
        // autocannon with `amount` resolves on its next one-second tick: the app's own clock is used instead.
        app.figures.requestsPerSecond.push(handled / (busyMs / 1000));
      }
    }
    // `app.close()` delivers what the module's sender and posthog-node still queue; observe flushes on a
    // timer only, so its delivery is awaited before the close.
    for (const app of apps) {
      if (app.mode === 'observe') await sinks.waitDelivered(app.mode, app.environment, app.sent);
      await ask(app.child, { type: 'shutdown' }, 'closed', REPLY_TIMEOUT_MS);
      if (app.child.exitCode === null) await once(app.child, 'exit');
      app.figures.expected = app.mode === 'bare' ? 0 : app.sent;
      app.figures.delivered = app.mode === 'bare' ? 0 : sinks.delivered(app.mode, app.environment);
      app.figures.failures = app.failures;
    }
    return new Map(apps.map((app) => [app.mode, app.figures]));
  } finally {
    for (const app of apps) await stopChild(app.child);
  }
}

const k = (instructions: number) => (instructions / 1000).toFixed(1);
const ratio = (bare: number | undefined, mode: number | undefined) => (bare && mode ? (bare / mode).toFixed(3) : '—');
const spread = (values: number[] | undefined, digits: number) =>
  values && values.length > 0
    ? `${median(values).toFixed(digits)} [${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}]`
    : '—';

function events(cell: Cell): string {
  if (cell.mode === 'bare') return '—';
  if (cell.callgrind) return `${cell.callgrind.delivered}/${REQUESTS}`;
  if (cell.rounds) return `${cell.rounds.delivered}/${cell.rounds.expected}`;
  return '—';
}

const HEADER = [
  'node',
  'adapter',
  'mode',
  'k instr/req main',
  'other threads',
  'total',
  'vs bare main',
  'vs bare total',
  'CPU µs/req',
  'req/s',
  'events delivered/expected',
];

function rowsOf(cells: Cell[]): string[][] {
  return cells.map((cell) => {
    const bare = cells.find((c) => c.node === cell.node && c.adapter === cell.adapter && c.mode === 'bare')?.callgrind;
    const cg = cell.callgrind;
    const runs = cg && cg.runs.length > 1 ? ` ±${(cg.spreadMainPct / 2).toFixed(2)}%` : '';
    return [
      cell.node,
      cell.adapter,
      cell.error ? `${cell.mode} (failed)` : cell.mode,
      cg ? `${k(cg.main)}${runs}` : '—',
      cg ? k(cg.other) : '—',
      cg ? k(cg.total) : '—',
      ratio(bare?.main, cg?.main),
      ratio(bare?.total, cg?.total),
      spread(cell.rounds?.cpuMicrosPerRequest, 1),
      spread(cell.rounds?.requestsPerSecond, 0),
      events(cell),
    ];
  });
}

function printTable(cells: Cell[]): void {
  const rows = rowsOf(cells);
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  console.log(line(HEADER));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

function settingsLine(): string {
  return (
    `warm-up ${WARMUP} requests; callgrind ${
      CALLGRIND
        ? `window ${REQUESTS} requests on ${CALLGRIND_CONNECTIONS} keep-alive sockets, ` +
          `tail ${TAIL_MS} ms, ${CALLGRIND_RUNS} run(s) per cell, V8 flags ${V8_FLAGS.join(' ') || 'none'}`
        : 'off'
    }; ` + `rounds ${ROUNDS ? `${ROUNDS} × ${ROUND_REQUESTS} requests, ${ROUND_CONNECTIONS} connections (autocannon)` : 'off'}`
  );
}

const MARK_START = '<!-- bench:start -->';
const MARK_END = '<!-- bench:end -->';
const DOC_SKELETON = `# Performance

The overhead of the module is measured as the instructions the app executes per request, counted by valgrind's
callgrind: the same Nest app (\`GET /items/:id\` answering a small JSON) runs bare, with \`TelemetryModule\`, with
posthog-node's own \`PostHogInterceptor\` plus a hand-written \`api_request\` capture, and with \`@nestjs/observe\`,
on Express and Fastify, under each supported Node.js version. Each app is warmed up, then callgrind counts a window
of a fixed number of requests that stays open until every event of the window has reached a loopback capture
server, so that serialising and sending the events is counted too. The main thread (the event loop) and the other
threads are counted apart. Unlike req/s or CPU time on a shared machine, these counts repeat within about 0.5%.
\`npm run bench\` runs it (scripts/bench.ts documents the settings); the table below is its last output.

${MARK_START}
${MARK_END}
`;

async function writeMarkdown(cells: Cell[], commandLine: string, startedAt: Date, wallSeconds: number): Promise<void> {
  const file = path.join(ROOT, 'docs/performance.md');
  const rows = rowsOf(cells);
  const table = [
    `| ${HEADER.join(' | ')} |`,
    `|${HEADER.map((_, i) => (i < 3 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
  const block = [
    MARK_START,
    '',
    `Measured ${startedAt.toISOString().slice(0, 10)} on ${os.cpus().length} × ${os.cpus()[0]?.model?.trim() ?? 'unknown CPU'}, ` +
      `${os.platform()} ${os.arch()}, with \`${commandLine}\` (${Math.round(wallSeconds / 60)} min): ${settingsLine()}.`,
    '"k instr/req": thousands of instructions per request (main: the event loop thread; other: every other thread: V8 GC and compiler threads, the libuv pool, worker threads); ' +
      '"vs bare": bare\'s instructions ÷ the mode\'s; CPU µs/req and req/s: median [min–max] over the rounds, without valgrind, ' +
      'on a shared machine (noisy); events: of the requests of the callgrind window, those whose event reached the loopback capture server or collector (the last partial batch after the window).',
    '',
    table,
    '',
    MARK_END,
  ].join('\n');
  await mkdir(path.dirname(file), { recursive: true });
  let text = existsSync(file) ? await readFile(file, 'utf8') : DOC_SKELETON;
  const start = text.indexOf(MARK_START);
  const end = text.indexOf(MARK_END);
  if (start === -1 || end < start) text = `${text.trimEnd()}\n\n${block}\n`;
  else text = text.slice(0, start) + block + text.slice(end + MARK_END.length);
  await writeFile(file, text);
}

function commandLine(): string {
  const vars = Object.entries(process.env)
    .filter(([name]) => name.startsWith('BENCH_'))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => `${name}=${value}`);
  return [...vars, 'npm run bench'].join(' ');
}

/** The last run's figures, if any. */
async function readLastRun(): Promise<{ cells: Cell[]; command: string; wallSeconds: number } | undefined> {
  try {
    return JSON.parse(await readFile(path.join(ROOT, 'bench-results/last.json'), 'utf8')) as {
      cells: Cell[];
      command: string;
      wallSeconds: number;
    };
  } catch {
    return undefined;
  }
}

/** Table order: newest Node first, then adapter, then mode as in BENCH_MODES' default. */
function cellOrder(cell: Cell): number {
  const major = Number(cell.node.split('.')[0]);
  const modes: string[] = ['bare', 'module', 'posthog-interceptor', 'observe'];
  return -major * 100 + (cell.adapter === 'express' ? 0 : 10) + modes.indexOf(cell.mode);
}

/** BENCH_RENDER=1: measure nothing; print and write (docs/performance.md) the table of bench-results/last.json. */
async function render(): Promise<void> {
  const last = await readLastRun();
  if (!last) throw new Error('bench-results/last.json: no run to render');
  const cells = [...last.cells].sort((a, b) => cellOrder(a) - cellOrder(b));
  printTable(cells);
  await writeMarkdown(cells, last.command, new Date((last as { startedAt?: string }).startedAt ?? Date.now()), last.wallSeconds);
}

async function main(): Promise<void> {
  if (intFromEnv('BENCH_RENDER', 0, 0, 1) === 1) return render();
  const startedAt = new Date();
  const t0 = performance.now();
  const nodes = resolveNodes();
  if (CALLGRIND) execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
  console.log(
    `Driver: Node ${process.version}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model?.trim() ?? 'unknown'}), ${os.platform()} ${os.arch()}`,
  );
  console.log(`Apps: Node ${nodes.map((n) => n.version).join(', ')} × ${ADAPTERS.join(', ')} × ${MODES.join(', ')}`);
  console.log(settingsLine());

  const library = await snapshotLibrary(ROOT);
  libraryUrl = library.entryUrl;
  const sinks = await new Sinks().start();
  const cells: Cell[] = [];
  try {
    for (const node of nodes) {
      for (const adapter of ADAPTERS) {
        const group: Cell[] = MODES.map((mode) => ({ node: node.version, adapter, mode }));
        cells.push(...group);
        if (CALLGRIND) {
          for (const cell of group) {
            const cellStart = performance.now();
            try {
              cell.callgrind = await callgrindCell(node.path, adapter, cell.mode, sinks);
              const cg = cell.callgrind;
              const runs =
                cg.runs.length > 1
                  ? `; runs (main) ${cg.runs.map((r) => k(r.main)).join(', ')}: spread ${cg.spreadMainPct.toFixed(2)}%`
                  : '';
              console.log(
                `[node ${node.version} ${adapter} ${cell.mode}] callgrind: main ${k(cg.main)}k, other ${k(cg.other)}k, total ${k(cg.total)}k instr/req; ` +
                  `events ${cell.mode === 'bare' ? '—' : `${cg.delivered}/${REQUESTS}`}; window ${(cg.windowMs / 1000).toFixed(1)} s, ` +
                  `cell ${((performance.now() - cellStart) / 1000).toFixed(0)} s${runs}`,
              );
            } catch (error) {
              cell.error = error instanceof Error ? error.message : String(error);
              console.error(`[node ${node.version} ${adapter} ${cell.mode}] callgrind failed: ${cell.error}`);
            }
          }
        }
        if (ROUNDS > 0) {
          const groupStart = performance.now();
          try {
            const figures = await roundsOfGroup(node.path, adapter, MODES, sinks);
            for (const cell of group) cell.rounds = figures.get(cell.mode);
            console.log(`[node ${node.version} ${adapter}] rounds done in ${((performance.now() - groupStart) / 1000).toFixed(0)} s`);
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            for (const cell of group) cell.error = [cell.error, `rounds: ${message}`].filter(Boolean).join('; ');
            console.error(`[node ${node.version} ${adapter}] rounds failed: ${message}`);
          }
        }
      }
    }
  } finally {
    killAll();
    await sinks.stop();
    await library.remove();
  }

  let wallSeconds = (performance.now() - t0) / 1000;
  let command = commandLine();
  if (MERGE) {
    const last = await readLastRun();
    if (last) {
      const measured = new Set(cells.map((c) => `${c.node} ${c.adapter} ${c.mode}`));
      const kept = last.cells.filter((c) => !measured.has(`${c.node} ${c.adapter} ${c.mode}`));
      cells.unshift(...kept);
      cells.sort((a, b) => cellOrder(a) - cellOrder(b));
      command = `${last.command}, then ${command}`;
      wallSeconds += last.wallSeconds;
    }
  }
  console.log('');
  printTable(cells);
  console.log('');
  console.log(
    'k instr/req: thousands of instructions per request in the callgrind window (main: the event loop thread; other: every other thread: V8 GC and compiler threads, the libuv pool, worker threads); ' +
      "vs bare: bare's instructions ÷ the mode's; CPU µs/req (the app's user + system, all threads) and req/s: median [min–max] over the rounds; " +
      'events: of the requests of the callgrind window, those whose event reached the loopback server (the last partial batch after the window; without callgrind: over the whole run).',
  );
  for (const cell of cells) {
    if (cell.rounds && cell.rounds.failures > 0)
      console.log(`WARNING: ${cell.node} ${cell.adapter} ${cell.mode}: ${cell.rounds.failures} failed request(s) in the rounds.`);
    if (cell.error) console.log(`FAILED: ${cell.node} ${cell.adapter} ${cell.mode}: ${cell.error.split('\n')[0]}`);
  }
  if (sinks.collector.malformed > 0) console.log(`WARNING: ${sinks.collector.malformed} collector bodies could not be read.`);
  console.log(`Wall time: ${(wallSeconds / 60).toFixed(1)} min.`);

  await mkdir(path.join(ROOT, 'bench-results'), { recursive: true });
  await writeFile(
    path.join(ROOT, 'bench-results/last.json'),
    `${JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        wallSeconds,
        command,
        machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model?.trim(), platform: os.platform(), arch: os.arch() },
        settings: {
          v8Flags: V8_FLAGS,
          warmup: WARMUP,
          requests: REQUESTS,
          tailMs: TAIL_MS,
          callgrind: CALLGRIND,
          callgrindRuns: CALLGRIND_RUNS,
          rounds: ROUNDS,
          roundRequests: ROUND_REQUESTS,
        },
        cells,
      },
      null,
      2,
    )}\n`,
  );
  // A partial run (some nodes, adapters or modes) would replace the docs' table with its own few cells.
  const partial = process.env.BENCH_NODES !== undefined || ADAPTERS.length < BENCH_ADAPTERS.length || MODES.length < BENCH_MODES.length;
  if (process.env.BENCH_MARKDOWN === '1' || (MARKDOWN && (!partial || MERGE))) await writeMarkdown(cells, command, startedAt, wallSeconds);
  else if (MARKDOWN) console.log('docs/performance.md left alone: a partial run (BENCH_MERGE=1 or BENCH_MARKDOWN=1 to write it)');
  if (cells.some((c) => c.error)) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});

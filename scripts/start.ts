// `npm start`: the journey explorer and the demo together, the demo's backend
// events and its page's posthog-js events going to the explorer. No PostHog
// account, no key. A first burst of demo traffic fills the explorer so there
// are journeys to look at straight away; then it prints the two URLs.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { runDemoTraffic } from '../apps/demo/src/demo-traffic.js';

const explorerPort = Number(process.env.EXPLORER_PORT ?? 8010);
const demoPort = Number(process.env.PORT ?? 3000);
const explorerUrl = `http://127.0.0.1:${explorerPort}`;
const demoUrl = `http://127.0.0.1:${demoPort}`;
/** The explorer takes any key; this one only names where the events came from. */
const key = 'phc_local_explorer';

const children: ChildProcess[] = [];
let stopping = false;
/** Preloaded into each app: it stops itself when this launcher's IPC channel closes, however the launcher ended. */
const exitWithParent = fileURLToPath(new URL('./exit-with-parent.js', import.meta.url));

function start(name: string, script: string, env: NodeJS.ProcessEnv): ChildProcess {
  // Detached: Ctrl+C reaches only this launcher, which stops the demo first (it flushes its
  // events to the explorer) and the explorer after. The IPC channel is the lifeline: if the
  // launcher dies without stopping them (kill -9, a crash), the apps see it close and stop.
  const child = spawn(process.execPath, ['--import', exitWithParent, script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    detached: true,
  });
  child.channel?.unref();
  child.on('exit', (code, signal) => {
    if (stopping) return;
    console.error(`${name} stopped (${signal ?? `exit code ${code}`}); stopping the rest.`);
    void stop(code ?? 1);
  });
  children.push(child);
  return child;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done();
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
  });
}

/** The demo first (its shutdown delivers queued events, within its 5 s timeout), then the explorer. */
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const child of [...children].reverse()) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited(child, 8000);
  }
  process.exit(code);
}

async function waitFor(url: string, what: string) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (stopping) throw new Error('stopped');
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not answer at ${url} within 30 s`);
}

/** Whether something already listens on `port` (an earlier `npm start`, most likely). */
function portInUse(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'EADDRINUSE' || error.code === 'EACCES'));
    server.listen(port, '127.0.0.1', () => server.close(() => done(false)));
  });
}

async function whoHolds(port: number): Promise<string> {
  // An earlier explorer answers its summary; an earlier demo its health check.
  const base = `http://127.0.0.1:${port}`;
  // A ref'd timer of its own: a peer that hangs up can leave fetch's promise with nothing keeping the process alive.
  const answers = (path: string) =>
    new Promise<boolean>((done) => {
      const timer = setTimeout(() => done(false), 1500);
      fetch(`${base}${path}`, { signal: AbortSignal.timeout(1000) })
        .then(
          (r) => r.ok,
          () => false,
        )
        .then((ok) => {
          clearTimeout(timer);
          done(ok);
        });
    });
  if (await answers('/api/summary')) return 'a journey explorer answers there: most likely an earlier `npm start` is still running';
  if (await answers('/health'))
    return 'an app answers /health there: most likely the demo of an earlier `npm start` (or `npm run demo`) is still running';
  return 'another program listens there';
}

// Ctrl+C, a kill, and closing the terminal (SIGHUP) all stop both apps.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(0));
// A closed terminal makes writes fail; that must not crash the launcher before it stopped the apps.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => void stop(0));
// When npm (or the shell) that started this launcher is killed alone, the launcher is re-parented:
// it then stops too, rather than leaving both apps running with nobody to stop them.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void stop(0);
}, 500).unref();

try {
  for (const [port, what, variable] of [
    [explorerPort, 'the explorer', 'EXPLORER_PORT'],
    [demoPort, 'the demo', 'PORT'],
  ] as const) {
    if (await portInUse(port)) {
      console.error(`npm start: port ${port} (${what}) is in use; ${await whoHolds(port)}. Stop it, or set ${variable} to another port.`);
      process.exit(1);
    }
  }
  start('The explorer', 'dist/apps/explorer/src/main.js', { EXPLORER_PORT: String(explorerPort), EXPLORER_DEMO_URL: demoUrl });
  await waitFor(`${explorerUrl}/api/summary`, 'The explorer');
  // A 1 s slow threshold (instead of 5 s) so the demo's slow calls show as slow_request.
  start('The demo', 'dist/apps/demo/src/main.js', {
    PORT: String(demoPort),
    POSTHOG_HOST: explorerUrl,
    POSTHOG_API_KEY: key,
    SLOW_THRESHOLD: process.env.SLOW_THRESHOLD ?? '1',
  });
  await waitFor(`${demoUrl}/health`, 'The demo');
  let firstUser: string | undefined;
  if (process.env.DEMO_TRAFFIC !== '0') {
    // Only a convenience: if it fails, the demo and the explorer still run.
    const traffic = await runDemoTraffic({
      apiUrl: demoUrl,
      posthogHost: explorerUrl,
      posthogKey: key,
      log: (line) => console.log(line),
    }).catch((error: Error) => void console.error(`The first round of demo traffic failed: ${error.message}`));
    firstUser = traffic?.users[0]?.distinctId;
  }
  // Last, so the URLs are not scrolled away by the demo's logs.
  console.log(
    [
      '',
      `  Demo page (click around):  ${demoUrl}/`,
      `  Journey explorer:          ${explorerUrl}/`,
      ...(firstUser ? [`  One person's journey:      ${explorerUrl}/#journey?distinct_id=${encodeURIComponent(firstUser)}`] : []),
      `  Errors as issues:          ${explorerUrl}/#issues`,
      `  More traffic:              npm run demo:traffic, or the "Generate traffic" button`,
      '  Stop with Ctrl+C.',
      '',
    ].join('\n'),
  );
} catch (error) {
  if (!stopping) {
    console.error(`npm start failed: ${(error as Error).message}`);
    void stop(1);
  }
}

// `npm start`: the journey explorer and the demo together, the demo's backend
// events and its page's posthog-js events going to the explorer. No PostHog
// account, no key. A first burst of demo traffic fills the explorer so there
// are journeys to look at straight away; then it prints the two URLs.
import { spawn, type ChildProcess } from 'node:child_process';
import { runDemoTraffic } from '../apps/demo/src/demo-traffic.js';

const explorerPort = Number(process.env.EXPLORER_PORT ?? 8010);
const demoPort = Number(process.env.PORT ?? 3000);
const explorerUrl = `http://127.0.0.1:${explorerPort}`;
const demoUrl = `http://127.0.0.1:${demoPort}`;
/** The explorer takes any key; this one only names where the events came from. */
const key = 'phc_local_explorer';

const children: ChildProcess[] = [];
let stopping = false;

function start(name: string, script: string, env: NodeJS.ProcessEnv): ChildProcess {
  // Detached: Ctrl+C reaches only this launcher, which stops the demo first (it flushes its
  // events to the explorer) and the explorer after.
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: 'inherit', detached: true });
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
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not answer at ${url} within 30 s`);
}

process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
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
  if (process.env.DEMO_TRAFFIC !== '0') {
    // Only a convenience: if it fails, the demo and the explorer still run.
    await runDemoTraffic({ apiUrl: demoUrl, posthogHost: explorerUrl, posthogKey: key, log: (line) => console.log(line) }).catch((error: Error) =>
      console.error(`The first round of demo traffic failed: ${error.message}`),
    );
  }
  // Last, so the URLs are not scrolled away by the demo's logs.
  console.log(
    [
      '',
      `  Demo page (click around):  ${demoUrl}/`,
      `  Journey explorer:          ${explorerUrl}/`,
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

// `npm start`'s launcher (built) never leaves its apps behind: a SIGHUP (the terminal
// closed), a SIGTERM, or the launcher's own death (kill -9) stops the explorer and the
// demo, and both ports are free again. A port already taken gets one clear line.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/recording-logger.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The processes whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may hold spaces, so read after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const portFree = (port: number) =>
  new Promise<boolean>((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });

async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

interface Run {
  launcher: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  ports: [number, number];
  dir: string;
}

async function launch(ports?: [number, number]): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'launcher-system-'));
  const [explorerPort, demoPort] = ports ?? [await freePort(), await freePort()];
  let output = '';
  const launcher = spawn(process.execPath, ['dist/scripts/start.js'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'development',
      EXPLORER_PORT: String(explorerPort),
      PORT: String(demoPort),
      EXPLORER_DB: join(dir, 'events.duckdb'),
      DEMO_TRAFFIC: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  launcher.stdout!.on('data', (chunk) => (output += chunk));
  launcher.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    launcher.once('exit', (code, signal) => done({ code, signal })),
  );
  return { launcher, output: () => output, exited, ports: [explorerPort, demoPort], dir };
}

describe('npm start: the launcher leaves no app behind', () => {
  const runs: Run[] = [];
  afterAll(() => {
    for (const run of runs) {
      for (const pid of childrenOf(run.launcher.pid!)) process.kill(pid, 'SIGKILL');
      if (run.launcher.exitCode === null) run.launcher.kill('SIGKILL');
      rmSync(run.dir, { recursive: true, force: true });
    }
  });

  it.each(['SIGHUP', 'SIGTERM', 'SIGKILL'] as const)(
    '%s to the launcher stops the explorer and the demo and frees both ports',
    async (signal) => {
      const run = await launch();
      runs.push(run);
      await eventually('the launcher to print its URLs', () => /Journey explorer:\s+http/.test(run.output()), 60_000);
      const apps = childrenOf(run.launcher.pid!);
      expect(apps).toHaveLength(2);
      expect(await portFree(run.ports[0])).toBe(false);
      expect(await portFree(run.ports[1])).toBe(false);

      run.launcher.kill(signal);
      await run.exited;
      await eventually('both apps to stop', () => apps.every((pid) => !alive(pid)));
      await eventually('both ports to be free', async () => (await portFree(run.ports[0])) && (await portFree(run.ports[1])));
    },
  );

  it('a port in use gets one clear line naming it and the likely earlier run', async () => {
    // Another program on the port: it hangs up on whoever connects.
    const blocker: Server = createServer((socket) => socket.destroy());
    const port = await freePort();
    await new Promise<void>((done) => blocker.listen(port, '127.0.0.1', done));
    try {
      const run = await launch([port, await freePort()]);
      runs.push(run);
      const { code } = await run.exited;
      expect(code).toBe(1);
      const lines = run.output().trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`port ${port} \\(the explorer\\) is in use; .*Stop it, or set EXPLORER_PORT`));
      expect(run.output()).not.toMatch(/EADDRINUSE|\n\s+at /);
      expect(childrenOf(run.launcher.pid!)).toEqual([]);
    } finally {
      await new Promise((done) => blocker.close(done));
    }
  });
});

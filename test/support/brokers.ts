import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * A real message broker for the microservices tests: Debian's `redis-server`
 * or `nats-server`, started by the test itself on a free loopback port with
 * its state in a temporary folder, so the tests depend on no broker of the
 * machine's; stopped (and its folder removed) by `stop()`. A missing binary is
 * installed by scripts/ensure-brokers.sh (as CI's .ci/run does); if that fails
 * the test fails: nothing is skipped.
 */
export interface Broker {
  readonly kind: 'redis' | 'nats';
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

const BINARIES = { redis: 'redis-server', nats: 'nats-server' } as const;

function findBinary(name: string): string | undefined {
  for (const dir of ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin']) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

function binary(name: string): string {
  let path = findBinary(name);
  if (!path) {
    execFileSync('bash', [resolve('scripts/ensure-brokers.sh'), 'install'], { stdio: 'inherit', timeout: 300_000 });
    path = findBinary(name);
  }
  if (!path) throw new Error(`${name} is not installed and scripts/ensure-brokers.sh could not install it`);
  return path;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`broker exited with ${child.exitCode} before listening on ${port}`);
    const up = await new Promise<boolean>((ok) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), ok(true)));
      socket.once('error', () => ok(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`broker did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export async function startBroker(kind: 'redis' | 'nats'): Promise<Broker> {
  const path = binary(BINARIES[kind]);
  const dir = mkdtempSync(join(tmpdir(), `rpc-${kind}-`));
  const port = await freePort();
  const args =
    kind === 'redis'
      ? ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no']
      : ['-a', '127.0.0.1', '-p', String(port)];
  const child = spawn(path, args, { cwd: dir, stdio: 'ignore' });
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  try {
    await waitForPort(port, child);
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    kind,
    port,
    url: kind === 'redis' ? `redis://127.0.0.1:${port}` : `nats://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

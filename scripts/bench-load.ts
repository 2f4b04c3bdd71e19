/**
 * An exact-count HTTP load for the callgrind windows: `count` GET requests over
 * `connections` keep-alive sockets, each socket sending its next request once
 * the previous answer is read. No timeouts: under callgrind one request can take
 * a while; the bench bounds the whole cell instead.
 */
import { Agent, request } from 'node:http';

export interface LoadResult {
  ok: number;
  failed: number;
  /** The first failure, to show when there is one. */
  firstFailure?: string;
}

function get(agent: Agent, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Sends exactly `count` requests and checks each answer against `expectBody`. The sockets are closed at
 * the end, so that none of them is closed by the server's keep-alive timer inside a later window.
 */
export async function sendRequests(
  port: number,
  path: string,
  count: number,
  connections: number,
  expectBody: string,
): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const result: LoadResult = { ok: 0, failed: 0 };
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      try {
        const { status, body } = await get(agent, port, path);
        if (status === 200 && body === expectBody) result.ok++;
        else {
          result.failed++;
          result.firstFailure ??= `${status} ${body.slice(0, 200)}`;
        }
      } catch (error) {
        result.failed++;
        result.firstFailure ??= String(error);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(connections, count) }, worker));
  } finally {
    agent.destroy();
  }
  return result;
}

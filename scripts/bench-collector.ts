/**
 * A loopback stand-in for the @nestjs/observe collector, for the benchmark: it
 * accepts what the agent's worker posts to `<endpoint>/applications/telemetry`
 * (gzip JSON: `{ serviceId, snapshots: [...], ... }`, one snapshot per request)
 * and counts the snapshots per `serviceId`. It answers 200 with `{}` (no
 * `degraded` flag), as a healthy collector does.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export class ObserveCollector {
  /** Request snapshots received, by `serviceId`. */
  readonly snapshots = new Map<string, number>();
  posts = 0;
  /** Bodies that were not the JSON the agent sends: a sign the wire format moved. */
  malformed = 0;
  private server?: Server;
  private port = 0;

  get url(): string {
    if (!this.port) throw new Error('collector not started');
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const path = (req.url ?? '/').split('?')[0];
        if (req.method === 'POST' && path === '/applications/telemetry') {
          this.posts++;
          this.count(Buffer.concat(chunks), req.headers['content-encoding'] === 'gzip');
        }
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      });
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  snapshotsOf(serviceId: string): number {
    return this.snapshots.get(serviceId) ?? 0;
  }

  private count(body: Buffer, gzip: boolean): void {
    try {
      const json = JSON.parse((gzip ? gunzipSync(body) : body).toString('utf8')) as { serviceId?: unknown; snapshots?: unknown };
      const service = String(json.serviceId);
      const n = Array.isArray(json.snapshots) ? json.snapshots.length : 0;
      this.snapshots.set(service, this.snapshotsOf(service) + n);
    } catch {
      this.malformed++;
    }
  }
}

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One event as PostHog's `/batch/` endpoint receives it. */
export interface CapturedEvent {
  event: string;
  distinct_id: string;
  properties: Record<string, any>;
  timestamp?: string;
  uuid?: string;
}

/** How the fake PostHog answers: healthy, failing with a status, slowly, or never. */
export type CaptureBehaviour =
  | { kind: 'ok' }
  | { kind: 'status'; status: number }
  | { kind: 'delay'; ms: number }
  | { kind: 'hang' }
  /** 413 for bodies over `maxBytes`, as PostHog does for oversized batches. */
  | { kind: 'limit'; maxBytes: number }
  /**
   * Reads the request, then sends a 200's status line one byte every `everyMs`, then an endless header the same
   * way: the socket is never idle, the answer never complete (a proxy or PostHog trickling its answer).
   */
  | { kind: 'trickle'; everyMs: number }
  /** Accepts the connection and the request line, never reads the body, never answers. */
  | { kind: 'never-read' };

/**
 * A PostHog capture endpoint on 127.0.0.1 for tests and the benchmark: the real
 * posthog-node client and the module's sender post gzip batches to it. With
 * `keepRaw`, bodies are stored as received and decoded only on demand, so the
 * server does little work while an app is under load.
 */
export class CaptureServer {
  readonly bodies: { body: Buffer; gzip: boolean; path: string }[] = [];
  behaviour: CaptureBehaviour = { kind: 'ok' };
  requests = 0;
  /** The headers of every request received, in arrival order (to check what clients attach, e.g. trace headers). */
  readonly requestHeaders: IncomingHttpHeaders[] = [];
  private server?: Server;
  private readonly hanging = new Set<ServerResponse>();

  constructor(private readonly keepRaw = false) {}

  private decodedCache: CapturedEvent[] = [];
  private decodedUpTo = 0;

  get url(): string {
    if (!this.port) throw new Error('capture server not started');
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens on 127.0.0.1, on `port` when given (to come back where clients expect it after `stop()`). */
  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** The port of the last `start()`, kept across `stop()`. */
  port = 0;

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Every event received so far, decoded, in arrival order. */
  get events(): CapturedEvent[] {
    for (; this.decodedUpTo < this.bodies.length; this.decodedUpTo++) {
      const { body, gzip } = this.bodies[this.decodedUpTo];
      const json = JSON.parse((gzip ? gunzipSync(body) : body).toString('utf8'));
      const batch: CapturedEvent[] = Array.isArray(json.batch) ? json.batch : [json];
      this.decodedCache.push(...batch);
    }
    return this.decodedCache;
  }

  eventsNamed(name: string, where: (e: CapturedEvent) => boolean = () => true): CapturedEvent[] {
    return this.events.filter((e) => e.event === name && where(e));
  }

  forRequest(requestId: string): CapturedEvent[] {
    return this.events.filter((e) => e.properties?.request_id === requestId);
  }

  /** Waits until `predicate` holds over the events received, or fails after `timeoutMs`. */
  async waitFor(predicate: (events: CapturedEvent[]) => boolean, timeoutMs = 10_000): Promise<CapturedEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (predicate(this.events)) return this.events;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(
      `capture server: condition not met within ${timeoutMs} ms; received ${this.events.map((e) => e.event).join(', ') || 'nothing'}`,
    );
  }

  reset(): void {
    this.bodies.length = 0;
    this.decodedCache = [];
    this.decodedUpTo = 0;
    this.requests = 0;
    this.requestHeaders.length = 0;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.behaviour.kind === 'never-read') {
      req.pause();
      this.requests++;
      this.hanging.add(res);
      // Forgotten once the client gives up: the server runs in the process whose memory is measured.
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      this.requests++;
      this.requestHeaders.push(req.headers);
      const behaviour = this.behaviour;
      if (behaviour.kind === 'hang') {
        this.hanging.add(res);
        return;
      }
      if (behaviour.kind === 'trickle') {
        this.trickle(req, res, behaviour.everyMs);
        return;
      }
      if (behaviour.kind === 'status') {
        res.writeHead(behaviour.status, { 'Content-Type': 'application/json' }).end('{"error":"injected"}');
        return;
      }
      if (behaviour.kind === 'limit' && Buffer.concat(chunks).length > behaviour.maxBytes) {
        res.writeHead(413, { 'Content-Type': 'application/json' }).end('{"error":"too large"}');
        return;
      }
      if (behaviour.kind === 'delay') {
        this.hanging.add(res);
        setTimeout(() => {
          this.hanging.delete(res);
          if (!res.destroyed) this.accept(req, res, chunks);
        }, behaviour.ms);
        return;
      }
      this.accept(req, res, chunks);
    });
  }

  /** Writes a 200's status line, then an endless header, one byte every `everyMs`, straight to the socket. */
  private trickle(req: IncomingMessage, res: ServerResponse, everyMs: number): void {
    this.hanging.add(res);
    const socket = req.socket;
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\nX-Trickle: ');
    let sent = 0;
    const timer = setInterval(() => {
      if (socket.destroyed) return clearInterval(timer);
      socket.write(sent < bytes.length ? bytes.subarray(sent, sent + 1) : 'a');
      sent++;
    }, everyMs);
    timer.unref();
    socket.on('close', () => {
      clearInterval(timer);
      this.hanging.delete(res);
    });
  }

  /** Keeps a capture body and answers 200, as PostHog does. */
  private accept(req: IncomingMessage, res: ServerResponse, chunks: Buffer[]): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && (path === '/batch/' || path === '/batch' || path === '/capture/' || path === '/i/v0/e/')) {
      const body = Buffer.concat(chunks);
      this.bodies.push({ body, gzip: req.headers['content-encoding'] === 'gzip', path });
      if (!this.keepRaw) void this.events;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":1}');
  }
}

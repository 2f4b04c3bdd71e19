import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One event as Sentry's envelope endpoint receives it. */
export interface SentryEnvelopeEvent {
  event_id: string;
  tags?: Record<string, string>;
  user?: { id?: string };
  exception?: { values?: { type?: string; value?: string }[] };
  request?: Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * A Sentry ingestion endpoint on 127.0.0.1: the real `@sentry/node` client
 * posts envelopes to the DSN `http://public@127.0.0.1:<port>/1`; this decodes
 * them (newline-separated JSON, gzip above 32 kB) and keeps the error events.
 */
export class SentryServer {
  readonly events: SentryEnvelopeEvent[] = [];
  /** Every envelope as received, decoded to text: to search for secrets. */
  readonly raw: string[] = [];
  /** Performance data, when the client traces: transactions, and span items (span streaming, `@sentry/node` 11). */
  readonly traces: unknown[] = [];
  private server?: Server;

  get dsn(): string {
    const { port } = this.server!.address() as AddressInfo;
    return `http://public@127.0.0.1:${port}/1`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8');
        this.raw.push(text);
        const lines = text.split('\n').filter((line) => line.trim() !== '');
        // Envelope: a header line, then (item header, item payload) pairs.
        for (let i = 1; i + 1 < lines.length; i += 2) {
          const item = JSON.parse(lines[i]);
          if (item.type === 'event') this.events.push(JSON.parse(lines[i + 1]));
          if (item.type === 'transaction' || item.type === 'span') this.traces.push(JSON.parse(lines[i + 1]));
        }
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this;
  }

  /** The error events tagged with this request id. */
  eventsFor(requestId: string): SentryEnvelopeEvent[] {
    return this.events.filter((e) => e.tags?.request_id === requestId);
  }

  /** Waits until each request id has an event (or 10 s pass; the test's assertions then say what is missing). */
  async waitForRequests(...requestIds: string[]): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (requestIds.some((id) => this.eventsFor(id).length === 0) && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 25));
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * The module's `sentry` option for tests. Jest runs several test files in one
 * process, each with its own copy of `@sentry/node`; Sentry's Fastify
 * integration listens on a process-wide diagnostics channel, so a second copy
 * would decorate every later Fastify instance twice. Real apps init Sentry once.
 */
export function sentryFor(server: SentryServer) {
  const withoutFastify = (integrations: { name: string }[]) => integrations.filter((i) => i.name !== 'Fastify');
  return { dsn: server.dsn, init: { integrations: withoutFastify } };
}

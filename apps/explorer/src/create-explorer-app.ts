import type { LoggerService } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { ExplorerModule } from './explorer.module.js';
import type { ExplorerSettings } from './explorer.settings.js';

const INGESTION_PATHS = /^\/(batch|e|i\/v0\/e|capture|track|engage|s|i\/v0\/s|flags|decide|array\/[^/]+\/config(\.js)?)\/?(\?|$)/;

/** The routes clients post events to (and posthog-js's start-up calls). */
export function isIngestionPath(url: string): boolean {
  return INGESTION_PATHS.test(url);
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Whether a `Host` header names this explorer: the bound address, a loopback name or an
 * EXPLORER_ALLOWED_HOSTS entry (a name, or a name:port), on the port the request arrived at.
 * A DNS-rebinding page sends its own host name, and is refused.
 */
export function hostAllowed(
  hostHeader: string | undefined,
  localPort: number | undefined,
  settings: Pick<ExplorerSettings, 'host' | 'allowedHosts'>,
): boolean {
  const allowed = settings.allowedHosts ?? [];
  if (allowed.includes('*')) return true;
  const host = hostHeader?.trim().toLowerCase();
  if (!host) return false;
  if (allowed.includes(host)) return true;
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(host);
  if (!match) return false;
  const [, name, port] = match;
  if ((port === undefined ? 80 : Number(port)) !== localPort) return false;
  const bound = settings.host.toLowerCase();
  const names = [
    ...LOOPBACK_NAMES,
    bound.includes(':') && !bound.startsWith('[') ? `[${bound}]` : bound,
    ...allowed.filter((h) => !/:\d+$/.test(h) || h.endsWith(']')),
  ];
  return names.includes(name);
}

/**
 * Whether a state-changing request could not have come from another site's simple request
 * (a form post, or `fetch` with `text/plain`): it sends JSON or `X-Requested-With`, which
 * a browser lets another origin send only after a CORS preflight, which the API refuses.
 */
export function nonSimpleRequest(headers: IncomingMessage['headers']): boolean {
  const type = (headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  return type === 'application/json' || headers['x-requested-with'] !== undefined;
}

/**
 * The guard in front of everything but ingestion: the page and the JSON API answer only
 * their own `Host` (403 otherwise), and a POST (or any method but GET, HEAD and OPTIONS) must
 * be a non-simple request (403 otherwise). Ingestion stays open, as PostHog's is: any Host,
 * any origin, simple requests.
 */
function guard(settings: ExplorerSettings) {
  const refuse = (res: ServerResponse, message: string) => {
    res
      .writeHead(403, { 'Content-Type': 'application/json; charset=utf-8' })
      .end(JSON.stringify({ statusCode: 403, error: 'Forbidden', message }));
  };
  return (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    if (isIngestionPath(req.url ?? '')) return next();
    if (!hostAllowed(req.headers.host, req.socket.localPort, settings)) {
      return refuse(res, "This Host is not the explorer's address (DNS rebinding?). Add it to EXPLORER_ALLOWED_HOSTS if you meant it.");
    }
    if (!SAFE_METHODS.has(req.method ?? 'GET') && !nonSimpleRequest(req.headers)) {
      return refuse(res, 'A state-changing request must send Content-Type: application/json or an X-Requested-With header.');
    }
    next();
  };
}

/**
 * The explorer as a Nest app, not yet listening. Bodies are read raw (so gzip,
 * base64 and forms are decoded by the ingestion code, not guessed by a JSON
 * parser) up to `maxBodyBytes` after inflating; past that the answer is 413
 * and the app goes on serving.
 */
export async function createExplorerApp(settings: ExplorerSettings, logger?: LoggerService | false): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(ExplorerModule.forRoot(settings), {
    bodyParser: false,
    logger: logger ?? ['error', 'warn'],
  });
  app.use(guard(settings));
  app.useBodyParser('raw', { type: () => true, limit: settings.maxBodyBytes });
  // posthog-js posts from the page's origin (the demo's), so the ingestion routes allow any origin.
  // The JSON API does not: another site open in the same browser must not read the events.
  app.enableCors((request: { url?: string }, callback: (error: Error | null, options: { origin: boolean; credentials: boolean }) => void) =>
    callback(null, { origin: isIngestionPath(request.url ?? ''), credentials: true }),
  );
  app.enableShutdownHooks();
  return app;
}

/** Starts the explorer on `settings.host:settings.port`; answers its base URL. */
export async function startExplorer(settings: ExplorerSettings, logger?: LoggerService | false) {
  const app = await createExplorerApp(settings, logger);
  await app.listen(settings.port, settings.host);
  const address = app.getHttpServer().address() as { port: number };
  const url = `http://${settings.host.includes(':') ? `[${settings.host}]` : settings.host}:${address.port}`;
  if (logger !== false) console.log(`Journey explorer on ${url} (events in ${settings.dbPath})`);
  return { app, url };
}

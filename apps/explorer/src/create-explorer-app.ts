import type { LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { ExplorerModule } from './explorer.module.js';
import type { ExplorerSettings } from './explorer.settings.js';

const INGESTION_PATHS = /^\/(batch|e|i\/v0\/e|capture|track|engage|s|i\/v0\/s|flags|decide|array\/[^/]+\/config(\.js)?)\/?(\?|$)/;

/** The routes clients post events to (and posthog-js's start-up calls). */
export function isIngestionPath(url: string): boolean {
  return INGESTION_PATHS.test(url);
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

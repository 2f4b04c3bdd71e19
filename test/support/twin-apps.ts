import 'reflect-metadata';
import type { DynamicModule, INestApplication, ModuleMetadata, Type } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TelemetryModule, type TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import type { AdapterName } from './test-app.js';

/** Where `TelemetryModule` goes among the app's imports: Nest's filter and guard order follows it. */
export type TelemetryPlacement = 'first' | 'last';

export interface AppShape {
  /** The app's own modules and providers, as a user writes them in `AppModule`. */
  imports?: (Type<unknown> | DynamicModule)[];
  controllers?: Type<unknown>[];
  providers?: ModuleMetadata['providers'];
  /** What `main.ts` does after `NestFactory.create`: `setGlobalPrefix`, `enableCors`, `useGlobalFilters`… */
  setup?: (app: INestApplication) => void;
}

/**
 * Boots the app a user would write, through `NestFactory.create` as `main.ts`
 * does, with `TelemetryModule.forRoot(telemetry)` among `AppModule`'s imports
 * (first or last), or without the module when `telemetry` is `undefined`.
 */
export async function bootApp(
  adapter: AdapterName,
  shape: AppShape,
  telemetry?: TelemetryModuleOptions,
  placement: TelemetryPlacement = 'first',
): Promise<INestApplication> {
  const own = shape.imports ?? [];
  const telemetryImport = telemetry ? [TelemetryModule.forRoot({ environment: 'test', ...telemetry })] : [];
  @Module({
    imports: placement === 'first' ? [...telemetryImport, ...own] : [...own, ...telemetryImport],
    controllers: shape.controllers ?? [],
    providers: shape.providers ?? [],
  })
  class AppModule {}
  const app =
    adapter === 'fastify'
      ? await NestFactory.create(AppModule, new FastifyAdapter(), { logger: false, abortOnError: false })
      : await NestFactory.create(AppModule, { logger: false, abortOnError: false });
  shape.setup?.(app);
  await app.listen(0, '127.0.0.1');
  return app;
}

/** One answer as the client received it. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The connection broke before the body ended (a stream cut midway). */
  aborted: boolean;
}

export interface Ask {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

/** One request over real HTTP, read to its end or to its break. */
export function ask(app: INestApplication, { method = 'GET', path, headers = {}, body }: Ask): Promise<Answer> {
  const { port } = app.getHttpServer().address() as AddressInfo;
  return new Promise((resolve, reject) => {
    // A connection of its own: a kept-alive socket would carry one answer's state into the next request.
    const req = httpRequest(
      { host: '127.0.0.1', port, method, path, agent: false, headers: { connection: 'close', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        let aborted = false;
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('aborted', () => (aborted = true));
        res.on('error', () => (aborted = true));
        res.on('close', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), aborted: aborted || !res.complete }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Headers that differ between two runs of the same app whatever the module does. */
const VOLATILE_HEADERS = new Set(['date', 'x-request-id', 'keep-alive', 'connection']);

/** What must be identical with and without the module: status, every stable header, the body's bytes, a break. */
export function comparable(answer: Answer, normaliseBody: (text: string) => string = (t) => t) {
  const headers = Object.fromEntries(Object.entries(answer.headers).filter(([name]) => !VOLATILE_HEADERS.has(name)));
  return { status: answer.status, headers, body: normaliseBody(answer.body.toString('latin1')), aborted: answer.aborted };
}

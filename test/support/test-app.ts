import 'reflect-metadata';
import type { INestApplication, LoggerService, ModuleMetadata } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TelemetryModule, type TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import { DemoModule } from '../../apps/demo/src/demo.module.js';

export type AdapterName = 'express' | 'fastify';
export const ADAPTERS: AdapterName[] = ['express', 'fastify'];

/**
 * The demo's routes with the telemetry module, on the given HTTP adapter,
 * listening on 127.0.0.1 (supertest talks to it over real HTTP).
 * `extra.telemetryModule` replaces `TelemetryModule.forRoot(telemetry)` (for forRootAsync).
 */
export async function createTestApp(
  adapter: AdapterName,
  telemetry: TelemetryModuleOptions,
  extra: ModuleMetadata & { logger?: LoggerService | false; telemetryModule?: unknown; globalPrefix?: string } = {},
): Promise<INestApplication> {
  const logger = extra.logger ?? false;
  const moduleRef = await Test.createTestingModule({
    imports: [
      (extra.telemetryModule as never) ?? TelemetryModule.forRoot({ environment: 'test', ...telemetry }),
      DemoModule,
      ...(extra.imports ?? []),
    ],
    controllers: extra.controllers ?? [],
    providers: extra.providers ?? [],
  }).compile();
  const app =
    adapter === 'fastify' ? moduleRef.createNestApplication(new FastifyAdapter(), { logger }) : moduleRef.createNestApplication({ logger });
  if (extra.globalPrefix) app.setGlobalPrefix(extra.globalPrefix);
  await app.init();
  if (adapter === 'fastify') await (app.getHttpAdapter().getInstance() as { ready(): Promise<void> }).ready();
  await app.listen(0, '127.0.0.1');
  return app;
}

/** Options that make the module deliver quickly to a capture server. */
export function sendingTo(url: string, overrides: TelemetryModuleOptions = {}): TelemetryModuleOptions {
  return {
    apiKey: 'phc_test_key',
    host: url,
    ...overrides,
    posthogOptions: { flushAt: 1, flushInterval: 20, ...(overrides.posthogOptions ?? {}) },
  };
}

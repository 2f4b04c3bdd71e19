import 'reflect-metadata';
import type { INestApplication, Type } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { ChatService } from '../../apps/demo/src/chat.service.js';
import { DemoController, InternalController } from '../../apps/demo/src/demo.controllers.js';
import type { AdapterName } from './test-app.js';

/** The demo's controllers without the telemetry module: what Nest answers on its own. */
export async function createBareApp(adapter: AdapterName, controllers: Type[] = []): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    controllers: [DemoController, InternalController, ...controllers],
    providers: [{ provide: ChatService, useValue: { send: async (m: string) => ({ reply: `echo: ${m}` }) } }],
  }).compile();
  const app =
    adapter === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
  await app.init();
  if (adapter === 'fastify') await (app.getHttpAdapter().getInstance() as { ready(): Promise<void> }).ready();
  await app.listen(0, '127.0.0.1');
  return app;
}

import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { DemoLogger } from './demo-logger.js';

async function bootstrap() {
  const adapter = process.env.DEMO_ADAPTER === 'fastify' ? 'fastify' : 'express';
  const app =
    adapter === 'fastify'
      ? await NestFactory.create(AppModule, new (await import('@nestjs/platform-fastify')).FastifyAdapter(), { logger: new DemoLogger() })
      : await NestFactory.create(AppModule, { logger: new DemoLogger() });
  // SIGTERM/SIGINT run the shutdown hooks, which deliver every queued event before exit.
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, process.env.HOST ?? '127.0.0.1');
  new Logger('Demo').log(`Demo API (${adapter}) on http://127.0.0.1:${port} — try /items/1, /me, /slow?ms=1200, /errors/quota`);
}

bootstrap().catch((error: NodeJS.ErrnoException) => {
  // A port in use: one clear line, no stack.
  console.error(
    error.code === 'EADDRINUSE'
      ? `Demo did not start: port ${process.env.PORT ?? 3000} is in use (an earlier npm start or npm run demo still running?); set PORT to another port.`
      : `Demo did not start: ${error.stack ?? error}`,
  );
  process.exit(1);
});

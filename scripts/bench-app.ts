/**
 * The app the overhead benchmark loads, one child process per cell, started by
 * scripts/bench.ts (directly, or under valgrind's callgrind):
 * `node dist/scripts/bench-app.js '<BenchAppConfig as JSON>'`.
 * The route and its handler are the same in every mode; only the imported
 * telemetry differs. It talks to the bench over IPC only, so no extra route has
 * to be kept out of telemetry.
 */
import 'reflect-metadata';
import {
  CallHandler,
  Controller,
  ExecutionContext,
  Get,
  Injectable,
  Module,
  NestInterceptor,
  OnApplicationShutdown,
  Param,
  ParseIntPipe,
  type DynamicModule,
  type INestApplication,
  type NestApplicationOptions,
  type Type,
} from '@nestjs/common';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { PostHog } from 'posthog-node';
import { PostHogInterceptor } from 'posthog-node/nestjs';
import { Observable, finalize } from 'rxjs';
import type { BenchAppConfig, BenchMode, BenchReply, BenchRequest } from './bench-protocol.js';

const config = JSON.parse(process.argv[2] ?? '{}') as BenchAppConfig;

/** Requests the route served since start: the denominator of CPU per request. */
let handled = 0;
/** When the route last answered: a round's req/s ends there, not when the load generator noticed. */
let lastHandledAt = 0;

@Controller()
class ItemsController {
  @Get('items/:id')
  item(@Param('id', ParseIntPipe) id: number) {
    handled++;
    lastHandledAt = performance.now();
    return { id, name: 'Popcorn', price: 4.5, inStock: true };
  }
}

/** What a team without the module writes: one `api_request` per request, by hand. */
@Injectable()
class ApiRequestInterceptor implements NestInterceptor {
  constructor(private readonly posthog: PostHog) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const startedAt = performance.now();
    const http = context.switchToHttp();
    const request = http.getRequest();
    const response = http.getResponse();
    return next.handle().pipe(
      finalize(() =>
        this.posthog.capture({
          event: 'api_request',
          properties: {
            // Express keeps the route template on `request.route`, Fastify on `request.routeOptions`.
            endpoint: request.route?.path ?? request.routeOptions?.url,
            method: request.method,
            status_code: response.statusCode,
            response_time_ms: performance.now() - startedAt,
            environment: config.environment,
          },
        }),
      ),
    );
  }
}

/** posthog-node's own NestJS integration, wired the way its docs suggest, plus the hand-written event. */
@Module({
  providers: [
    { provide: PostHog, useFactory: () => new PostHog('phc_bench', { host: config.captureUrl }) },
    // Registration order is execution order: PostHogInterceptor's context wraps the capture.
    { provide: APP_INTERCEPTOR, inject: [PostHog], useFactory: (posthog: PostHog) => new PostHogInterceptor(posthog) },
    { provide: APP_INTERCEPTOR, useClass: ApiRequestInterceptor },
  ],
})
class PostHogInterceptorModule implements OnApplicationShutdown {
  constructor(private readonly posthog: PostHog) {}

  /** `app.close()` delivers what the client still queues. */
  onApplicationShutdown(): Promise<void> {
    return this.posthog.shutdown();
  }
}

/** Each mode loads only its own telemetry package (the module from the bench's private copy of the build). */
async function telemetryFor(mode: BenchMode): Promise<{ imports: (Type | DynamicModule)[]; options: NestApplicationOptions }> {
  switch (mode) {
    case 'bare':
      return { imports: [], options: {} };
    case 'module': {
      const { TelemetryModule } = (await import(config.libraryUrl)) as typeof import('nestjs-posthog-telemetry');
      return {
        imports: [TelemetryModule.forRoot({ apiKey: 'phc_bench', host: config.captureUrl, environment: config.environment })],
        options: {},
      };
    }
    case 'posthog-interceptor':
      return { imports: [PostHogInterceptorModule], options: {} };
    case 'observe': {
      const { createObserveModule } = await import('@nestjs/observe');
      const { ObserveModule, ObserveInstrument } = createObserveModule();
      const observe = ObserveModule.forRoot({
        appKey: 'bench',
        appSecret: 'bench',
        serviceId: config.environment,
        endpoint: config.collectorUrl,
        // Its shortest interval (the module sends at least every second too); runtime metrics are a
        // 60 s timer unrelated to requests, off so that they do not land in some windows and not others.
        flushInterval: 1000,
        runtimeMetrics: false,
      });
      return { imports: [observe], options: { instrument: ObserveInstrument } };
    }
    default:
      throw new Error(`unknown mode ${String(mode)}`);
  }
}

function reply(message: BenchReply): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) reject(new Error('no IPC channel'));
    else process.send(message, undefined, {}, (error) => (error ? reject(error) : resolve()));
  });
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('bench-app runs as a child of scripts/bench.ts (it needs an IPC channel)');
  // Loopback only: the bench must never send telemetry anywhere else.
  const loopback = (url: unknown) => typeof url === 'string' && url.startsWith('http://127.0.0.1:');
  if (!loopback(config.captureUrl) || !loopback(config.collectorUrl) || !config.environment) {
    throw new Error(
      `usage: bench-app.js '{"mode":…,"adapter":…,"captureUrl":"http://127.0.0.1:…","collectorUrl":"http://127.0.0.1:…","environment":…}'`,
    );
  }
  const telemetry = await telemetryFor(config.mode);

  @Module({ imports: telemetry.imports, controllers: [ItemsController] })
  class BenchAppModule {}

  // Errors and warnings only: the libraries' dropped-event warnings must stay visible.
  const options: NestApplicationOptions = { logger: ['error', 'warn'], ...telemetry.options };
  const app: INestApplication =
    config.adapter === 'fastify'
      ? await NestFactory.create(BenchAppModule, new FastifyAdapter(), options)
      : await NestFactory.create(BenchAppModule, options);
  await app.listen(0, '127.0.0.1');

  let cpuAtStart = process.cpuUsage();
  let handledAtStart = handled;
  let roundStartedAt = performance.now();
  process.on('message', (message: BenchRequest) => {
    void (async () => {
      switch (message.type) {
        case 'round-start':
          cpuAtStart = process.cpuUsage();
          handledAtStart = handled;
          roundStartedAt = performance.now();
          return reply({ type: 'round-started' });
        case 'round-end': {
          // User + system time of the whole process: event loop, GC, worker threads and the thread pool (gzip).
          const cpu = process.cpuUsage(cpuAtStart);
          return reply({
            type: 'round-ended',
            cpuMicros: cpu.user + cpu.system,
            handled: handled - handledAtStart,
            busyMs: lastHandledAt - roundStartedAt,
          });
        }
        case 'shutdown':
          await app.close();
          await reply({ type: 'closed', handled });
          process.disconnect();
      }
    })().catch((error) => {
      console.error(`bench-app (${config.mode}, ${config.adapter}):`, error);
      process.exit(1);
    });
  });
  // Never outlive the bench, whatever happened to it.
  process.once('disconnect', () => process.exit(0));

  const { port } = app.getHttpServer().address() as AddressInfo;
  await reply({ type: 'ready', port });
}

main().catch((error) => {
  console.error(`bench-app (${config.mode}, ${config.adapter}):`, error);
  process.exit(1);
});

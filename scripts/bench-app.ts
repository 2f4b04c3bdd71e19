/**
 * The app the overhead benchmark loads, one child process per mode, forked by
 * scripts/bench.ts: `node dist/scripts/bench-app.js <mode> <capture url> <environment>`.
 * It talks to the bench over IPC only, so no extra route has to be kept out of
 * telemetry.
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
  type Type,
} from '@nestjs/common';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { TelemetryModule } from 'nestjs-posthog-telemetry';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { PostHog } from 'posthog-node';
import { PostHogInterceptor } from 'posthog-node/nestjs';
import { Observable, finalize } from 'rxjs';

export type BenchMode = 'bare' | 'module' | 'posthog-interceptor';

/** Bench → app. */
export type BenchRequest = { type: 'round-start' } | { type: 'round-end' } | { type: 'shutdown' };
/** App → bench. */
export type BenchReply =
  | { type: 'ready'; port: number }
  | { type: 'round-started' }
  | { type: 'round-ended'; cpuMicros: number; handled: number }
  | { type: 'closed'; handled: number };

/** `environment` tags each mode's events, so the bench can tell them apart at the capture server. */
const [mode, captureUrl, environment] = process.argv.slice(2) as [BenchMode, string, string];

/** Requests the route served since start: the denominator of CPU per request. */
let handled = 0;

@Controller()
class ItemsController {
  @Get('items/:id')
  item(@Param('id', ParseIntPipe) id: number) {
    handled++;
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
            endpoint: request.route?.path,
            method: request.method,
            status_code: response.statusCode,
            response_time_ms: performance.now() - startedAt,
            environment,
          },
        }),
      ),
    );
  }
}

/** posthog-node's own NestJS integration, wired the way its docs suggest, plus the hand-written event. */
@Module({
  providers: [
    { provide: PostHog, useFactory: () => new PostHog('phc_bench', { host: captureUrl }) },
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

function telemetryFor(mode: BenchMode): Array<Type | DynamicModule> {
  switch (mode) {
    case 'bare':
      return [];
    case 'module':
      return [TelemetryModule.forRoot({ apiKey: 'phc_bench', host: captureUrl, environment })];
    case 'posthog-interceptor':
      return [PostHogInterceptorModule];
    default:
      throw new Error(`unknown mode ${String(mode)}`);
  }
}

function reply(message: BenchReply): Promise<void> {
  return new Promise((resolve, reject) => process.send!(message, undefined, {}, (error) => (error ? reject(error) : resolve())));
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('bench-app runs as a child of scripts/bench.ts (it needs an IPC channel)');
  // Loopback only: the bench must never send telemetry anywhere else.
  if (!captureUrl?.startsWith('http://127.0.0.1:') || !environment) {
    throw new Error('usage: bench-app.js <bare|module|posthog-interceptor> http://127.0.0.1:<port> <environment>');
  }

  @Module({ imports: telemetryFor(mode), controllers: [ItemsController] })
  class BenchAppModule {}

  // Errors and warnings only: the library's dropped-event warnings must stay visible.
  const app = await NestFactory.create(BenchAppModule, { logger: ['error', 'warn'] });
  await app.listen(0, '127.0.0.1');

  let cpuAtStart = process.cpuUsage();
  let handledAtStart = handled;
  process.on('message', (message: BenchRequest) => {
    void (async () => {
      switch (message.type) {
        case 'round-start':
          cpuAtStart = process.cpuUsage();
          handledAtStart = handled;
          return reply({ type: 'round-started' });
        case 'round-end': {
          // User + system time of the whole process: event loop, GC and the thread pool (gzip).
          const cpu = process.cpuUsage(cpuAtStart);
          return reply({ type: 'round-ended', cpuMicros: cpu.user + cpu.system, handled: handled - handledAtStart });
        }
        case 'shutdown':
          await app.close();
          await reply({ type: 'closed', handled });
          process.disconnect();
      }
    })().catch((error) => {
      console.error(`bench-app (${mode}):`, error);
      process.exit(1);
    });
  });
  // Never outlive the bench, whatever happened to it.
  process.once('disconnect', () => process.exit(0));

  const { port } = app.getHttpServer().address() as AddressInfo;
  await reply({ type: 'ready', port });
}

main().catch((error) => {
  console.error(`bench-app (${mode}):`, error);
  process.exit(1);
});

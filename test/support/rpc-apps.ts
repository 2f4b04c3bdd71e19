import 'reflect-metadata';
import {
  Catch,
  Controller,
  Get,
  Inject,
  Injectable,
  Module,
  NotFoundException,
  Param,
  Scope,
  UseFilters,
  type DynamicModule,
  type INestApplication,
  type INestMicroservice,
  type LoggerService,
  type RpcExceptionFilter,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ClientProxy,
  ClientProxyFactory,
  ClientsModule,
  Ctx,
  EventPattern,
  MessagePattern,
  NatsRecordBuilder,
  Payload,
  RpcException,
  Transport,
} from '@nestjs/microservices';
import { createServer } from 'node:net';
import { concat, lastValueFrom, Observable, of, throwError, timeout, toArray } from 'rxjs';
import { getRequestContext, TelemetryModule, type TelemetryModuleOptions } from 'nestjs-posthog-telemetry';

export type TransportName = 'tcp' | 'redis' | 'nats';

/** Where a transport's server listens: a TCP port of its own, or the broker's. */
export interface TransportAddress {
  name: TransportName;
  /** TCP: the server's port; Redis: the broker's. */
  port?: number;
  /** NATS: the broker's URL. */
  url?: string;
}

/** The `{ transport, options }` a user passes to `createMicroservice`, `connectMicroservice` and `ClientsModule`. */
export function transportConfig(address: TransportAddress): { transport: any; options: any } {
  switch (address.name) {
    case 'tcp':
      return { transport: Transport.TCP, options: { host: '127.0.0.1', port: address.port } };
    case 'redis':
      return { transport: Transport.REDIS, options: { host: '127.0.0.1', port: address.port, retryAttempts: 0 } };
    case 'nats':
      return { transport: Transport.NATS, options: { servers: [address.url] } };
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

/** The patterns the test service answers, by a short name, and the data each is sent. */
export const CALLS: Record<string, { pattern: unknown; data: unknown }> = {
  sum: { pattern: 'sum', data: [1, 2, 3] },
  greet: { pattern: { v: 1, cmd: 'greet' }, data: { name: 'Ada' } },
  echo: { pattern: 'echo', data: { nested: { list: [1, 'two'] }, text: 'as sent' } },
  fail: { pattern: 'fail', data: { id: 1 } },
  rpcError: { pattern: 'rpc-error', data: { id: 2 } },
  rpcString: { pattern: 'rpc-string', data: { id: 3 } },
  notFound: { pattern: 'not-found', data: { id: 4 } },
  range: { pattern: 'range', data: { id: 5 } },
  stream: { pattern: 'stream', data: { n: 3 } },
  streamFail: { pattern: 'stream-fail', data: { n: 1 } },
  scoped: { pattern: 'scoped', data: { id: 7 } },
  scopedFail: { pattern: 'scoped-fail', data: { id: 8 } },
  unknown: { pattern: 'no-such-pattern', data: { id: 6 } },
};

/** The events the test service takes. */
export const EMITS: Record<string, { pattern: string; data: unknown }> = {
  audit: { pattern: 'audit', data: { what: 'login' } },
  auditFail: { pattern: 'audit-fail', data: { what: 'logout' } },
};

/** What the event handlers saw, and in which request. */
export const seenEvents: { pattern: string; data: unknown; requestId: string | null }[] = [];

let thrown = 0;

/** The app's own RPC filter for one class: its payload, not Nest's. */
@Catch(RangeError)
export class RangeFilter implements RpcExceptionFilter<RangeError> {
  catch(exception: RangeError): Observable<never> {
    return throwError(() => ({ from: 'range-filter', message: exception.message }));
  }
}

/** A request-scoped provider: the controller using it is made per message (Nest's request-scoped handler path). */
@Injectable({ scope: Scope.REQUEST })
export class PerMessage {
  readonly made = 'per message';
}

@Controller()
export class ScopedController {
  constructor(private readonly perMessage: PerMessage) {}

  @MessagePattern('scoped')
  scoped() {
    return { scoped: this.perMessage.made };
  }

  @MessagePattern('scoped-fail')
  scopedFail() {
    throw new Error(`scoped store down (${++thrown})`);
  }
}

/** A second handler of the `audit` event, in another controller: Nest runs both for one message. */
@Controller()
export class AuditMirrorController {
  @EventPattern('audit')
  mirror(@Payload() data: unknown) {
    seenEvents.push({ pattern: 'audit (mirror)', data, requestId: getRequestContext()?.requestId ?? null });
  }
}

@Controller()
export class MathController {
  @MessagePattern('sum')
  sum(@Payload() data: number[]) {
    return data.reduce((a, b) => a + b, 0);
  }

  @MessagePattern({ cmd: 'greet', v: 1 })
  greet(@Payload() data: { name: string }) {
    return `hello ${data.name}`;
  }

  /** The data exactly as received: the module adds nothing to it. */
  @MessagePattern('echo')
  echo(@Payload() data: unknown) {
    return { data };
  }

  /** The request id the handler runs under. */
  @MessagePattern('whoami')
  // eslint-disable-next-line @typescript-eslint/no-unused-vars -- a handler with Nest's parameter decorators, as apps write them
  whoami(@Payload() _data: unknown, @Ctx() _ctx: unknown) {
    return { requestId: getRequestContext()?.requestId ?? null };
  }

  @MessagePattern('fail')
  fail() {
    // A message of its own each time: Sentry's Dedupe drops identical consecutive events.
    throw new Error(`ledger unavailable (${++thrown})`);
  }

  @MessagePattern('rpc-error')
  rpcError() {
    throw new RpcException({ code: 'E_QUOTA', detail: 'over quota' });
  }

  @MessagePattern('rpc-string')
  rpcString() {
    throw new RpcException('plain words');
  }

  @MessagePattern('not-found')
  async notFound() {
    throw new NotFoundException('no such account');
  }

  @MessagePattern('range')
  @UseFilters(RangeFilter)
  range() {
    throw new RangeError('amount out of range');
  }

  @MessagePattern('stream')
  stream(@Payload() data: { n: number }) {
    return of(...Array.from({ length: data.n }, (_, i) => i + 1));
  }

  @MessagePattern('stream-fail')
  streamFail() {
    return concat(
      of(1),
      throwError(() => new Error('stream broke')),
    );
  }

  @EventPattern('audit')
  audit(@Payload() data: unknown) {
    seenEvents.push({ pattern: 'audit', data, requestId: getRequestContext()?.requestId ?? null });
  }

  @EventPattern('audit-fail')
  auditFail(@Payload() data: unknown) {
    seenEvents.push({ pattern: 'audit-fail', data, requestId: getRequestContext()?.requestId ?? null });
    throw new Error(`audit store down (${++thrown})`);
  }
}

function telemetryImports(telemetry: TelemetryModuleOptions | undefined): DynamicModule[] {
  return telemetry ? [TelemetryModule.forRoot({ environment: 'test', ...telemetry })] : [];
}

/** The microservice as `main.ts` starts it (`NestFactory.createMicroservice`), with or without the module. */
export async function bootMicroservice(
  address: TransportAddress,
  telemetry?: TelemetryModuleOptions,
  logger: LoggerService | false = false,
): Promise<INestMicroservice> {
  @Module({
    imports: telemetryImports(telemetry),
    controllers: [MathController, AuditMirrorController, ScopedController],
    providers: [PerMessage],
  })
  class ServiceModule {}
  const app = await NestFactory.createMicroservice(ServiceModule, { ...transportConfig(address), logger, abortOnError: false } as any);
  await app.listen();
  return app;
}

/** A hybrid app: HTTP plus the microservice, `connectMicroservice(…, { inheritAppConfig: true })`. */
export async function bootHybrid(address: TransportAddress, telemetry?: TelemetryModuleOptions): Promise<INestApplication> {
  @Module({
    imports: telemetryImports(telemetry),
    controllers: [MathController, AuditMirrorController, ScopedController],
    providers: [PerMessage],
  })
  class HybridModule {}
  const app = await NestFactory.create(HybridModule, { logger: false, abortOnError: false });
  app.connectMicroservice(transportConfig(address), { inheritAppConfig: true });
  await app.startAllMicroservices();
  await app.listen(0, '127.0.0.1');
  return app;
}

/** What a caller got: every value, or the error, as plain data. */
export type Got = { values: unknown[] } | { error: unknown };

function plain(error: unknown): unknown {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return error;
}

/** `send` as a caller uses it, bounded: a caller left waiting shows as a timeout, never as a hang. */
export async function got(client: ClientProxy, pattern: unknown, data: unknown): Promise<Got> {
  try {
    return { values: await lastValueFrom(client.send(pattern, data).pipe(timeout(3000), toArray())) };
  } catch (error) {
    return { error: plain(error) };
  }
}

export function plainClient(address: TransportAddress): ClientProxy {
  return ClientProxyFactory.create(transportConfig(address) as any) as unknown as ClientProxy;
}

/** A header or metadata field the caller sets itself, as the module's documented fields. */
export function withOwnRequestId(address: TransportAddress, client: ClientProxy, requestId: string, data: unknown): unknown {
  if (address.name === 'nats') return new NatsRecordBuilder(data).setHeaders(natsHeaders({ 'x-request-id': requestId })).build();
  client.setOnDispatchHook((packet: any) => {
    packet.metadata = { ...(packet.metadata ?? {}), 'x-request-id': requestId };
  });
  return data;
}

let natsHeadersFactory: (() => any) | undefined;
export async function loadNatsHeaders(): Promise<void> {
  natsHeadersFactory = (await import('@nats-io/transport-node')).headers as () => any;
}
function natsHeaders(fields: Record<string, string>): any {
  const headers = natsHeadersFactory!();
  for (const [k, v] of Object.entries(fields)) headers.set(k, v);
  return headers;
}

export const CLIENT = 'MATH_SERVICE';

/** An HTTP app calling the microservice through `ClientsModule`, with or without the module. */
export async function bootCaller(address: TransportAddress, telemetry?: TelemetryModuleOptions): Promise<INestApplication> {
  @Controller('call')
  class CallerController {
    constructor(@Inject(CLIENT) private readonly client: ClientProxy) {}

    /** Answers what the service answered, or the error it sent, as data. */
    @Get(':name')
    async call(@Param('name') name: string) {
      const { pattern, data } = CALLS[name] ?? { pattern: 'whoami', data: { from: 'caller' } };
      return got(this.client, pattern, data);
    }

    /** Lets the service's error reach Nest's HTTP handling, as a caller without a try does. */
    @Get('raw/:name')
    async raw(@Param('name') name: string) {
      const { pattern, data } = CALLS[name];
      return lastValueFrom(this.client.send(pattern, data).pipe(timeout(5000)));
    }

    /** A send with the caller's own request id (its dispatch hook, its NATS record's header): the app's id wins. */
    @Get('own/:id')
    async own(@Param('id') id: string) {
      const data = withOwnRequestId(address, this.client, id, { from: 'own' });
      try {
        const answer = await got(this.client, 'whoami', data);
        const headers = (data as { headers?: { keys(): string[]; get(k: string): string } }).headers;
        return { answer, recordHeaders: headers ? headers.keys().map((k) => [k, headers.get(k)]) : null };
      } finally {
        (this.client as any).setOnDispatchHook(undefined);
      }
    }

    @Get('emit/:name')
    async emit(@Param('name') name: string) {
      const { pattern, data } = EMITS[name];
      await lastValueFrom(this.client.emit(pattern, data), { defaultValue: undefined });
      return { emitted: name };
    }
  }
  @Module({
    imports: [...telemetryImports(telemetry), ClientsModule.register([{ name: CLIENT, ...transportConfig(address) } as any])],
    controllers: [CallerController],
  })
  class CallerModule {}
  const app = await NestFactory.create(CallerModule, { logger: false, abortOnError: false });
  await app.listen(0, '127.0.0.1');
  return app;
}

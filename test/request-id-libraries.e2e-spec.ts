import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import {
  Body,
  type CallHandler,
  Controller,
  createParamDecorator,
  type ExecutionContext,
  Get,
  type INestApplication,
  Injectable,
  type MiddlewareConsumer,
  Module,
  type NestInterceptor,
  type NestModule,
  Param,
  ParseIntPipe,
  Post,
  Query,
  Req,
  RequestMethod,
  Res,
} from '@nestjs/common';
import { APP_INTERCEPTOR, HttpAdapterHost } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { ClsModule, ClsService, type ClsMiddlewareOptions } from 'nestjs-cls';
import { LoggerModule, PinoLogger } from 'nestjs-pino';
import { requestIdOf, TelemetryModule } from 'nestjs-posthog-telemetry';
import type { Options as PinoHttpOptions } from 'pino-http';
import request from 'supertest';
// nestjs-pino keeps one pino-http middleware per process, made from the first configuration it sees: each app here gets its own.
import { resetRootLogger } from '../node_modules/nestjs-pino/dist/esm/rootLogger.js';
import { CaptureServer } from './support/capture-server.js';
import { ADAPTERS, type AdapterName, sendingTo } from './support/test-app.js';

/*
 * The request-id recipes nestjs-pino (pino-http) and nestjs-cls document, in real apps on Express and Fastify:
 * with the module, pino's log lines, the cls id, the `X-Request-ID` response header and the events' `request_id`
 * are one id. Before the module set `req.id` and the incoming header, one request had up to three ids, and
 * pino's recipe replaced the module's response header. The README's "One request id with nestjs-pino and
 * nestjs-cls" shows these recipes; the last test checks it still does.
 */

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** pino-http's README recipe ("Define a custom request id function"), as printed there. */
const pinoRecipe: PinoHttpOptions = {
  genReqId: function (req, res) {
    const existingID = req.id ?? req.headers['x-request-id'];
    if (existingID) return existingID;
    const id = randomUUID();
    res.setHeader('X-Request-Id', id);
    return id;
  },
};
/** pino-http's own default: no `genReqId` (a counter, unless `req.id` is set). */
const pinoDefault: PinoHttpOptions = {};

/** nestjs-cls's "Request ID" recipe, with the header name in lower case as Node gives it. */
const clsRecipe: ClsMiddlewareOptions = {
  mount: true,
  generateId: true,
  idGenerator: (req) => req.headers['x-request-id'] ?? randomUUID(),
};
/** The same with the module's helper, for recipes that cannot read the header. */
const clsWithHelper: ClsMiddlewareOptions = { mount: true, generateId: true, idGenerator: (req) => requestIdOf(req) ?? randomUUID() };
/** nestjs-cls's recipe exactly as its docs print it (bar a stray semicolon): `X-Request-Id` never matches a Node header. */
const clsAsPrinted: ClsMiddlewareOptions = {
  mount: true,
  generateId: true,
  idGenerator: (req) => req.headers['X-Request-Id'] ?? randomUUID(),
};

/** nestjs-pino 5.2.1's default routes (`{/*splat}`) reach no route on @nestjs/platform-fastify 12.5: no request would be logged. */
const FASTIFY_PINO_ROUTES = { forRoutes: [{ path: '{*path}', method: RequestMethod.ALL }] };

/** pino's log lines, parsed, as pino writes them. */
class LogLines extends Writable {
  readonly lines: Record<string, any>[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') this.lines.push(JSON.parse(line));
    done();
  }
}

const RequestIdOfContext = createParamDecorator((_data: unknown, context: ExecutionContext) => requestIdOf(context) ?? null);

@Controller()
class ProbeController {
  constructor(
    private readonly cls: ClsService,
    private readonly logger: PinoLogger,
  ) {}

  @Get('ids')
  ids(@Req() req: unknown, @RequestIdOfContext() fromContext: string | null) {
    this.logger.info('handled');
    return { cls: this.cls.getId() ?? null, fromRequest: requestIdOf(req) ?? null, fromContext };
  }

  /** Answers through Node's `writeHead` with its own `X-Request-ID` field (an object, or a flat list with `?list`). */
  @Get('raw')
  raw(@Res() reply: any, @Query('list') list?: string) {
    const res: ServerResponse = reply.raw ?? reply;
    res.writeHead(
      200,
      list !== undefined
        ? ['Content-Type', 'text/plain', 'X-Request-ID', 'set-by-writeHead']
        : { 'content-type': 'text/plain', 'x-request-id': 'set-by-writeHead' },
    );
    res.end('raw');
  }

  @Get('hello')
  hello() {
    return 'hello';
  }

  @Get('items/:id')
  item(@Param('id', ParseIntPipe) id: number) {
    return { id, name: 'Popcorn' };
  }

  @Get('boom')
  boom() {
    throw new Error('boom');
  }

  @Post('echo')
  echo(@Body() body: unknown) {
    return { echoed: body };
  }
}

/** Sets another `X-Request-ID` through the adapter (Express's `res.set`, Fastify's `reply.header`). */
@Injectable()
class OverwritingInterceptor implements NestInterceptor {
  constructor(private readonly adapterHost: HttpAdapterHost) {}
  intercept(context: ExecutionContext, next: CallHandler) {
    this.adapterHost.httpAdapter.setHeader(context.switchToHttp().getResponse(), 'X-Request-ID', 'set-by-interceptor');
    return next.handle();
  }
}

/** An app whose own middleware and interceptor set `X-Request-ID` after the module did. */
@Module({ providers: [{ provide: APP_INTERCEPTOR, useClass: OverwritingInterceptor }] })
class OverwritingModule implements NestModule {
  configure(consumer: MiddlewareConsumer) {
    consumer
      .apply((_req: IncomingMessage, res: ServerResponse, next: () => void) => {
        res.setHeader('X-Request-ID', 'set-by-middleware');
        next();
      })
      .forRoutes({ path: '{*path}', method: RequestMethod.ALL });
  }
}

interface Setup {
  /** The capture server's URL: with the module. */
  telemetry?: string;
  pino: PinoHttpOptions;
  cls: ClsMiddlewareOptions;
  overwriting?: boolean;
}

async function boot(adapter: AdapterName, setup: Setup, logs: LogLines): Promise<INestApplication> {
  resetRootLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [
      ...(setup.telemetry ? [TelemetryModule.forRoot({ environment: 'test', ...sendingTo(setup.telemetry) })] : []),
      LoggerModule.forRoot({ pinoHttp: [setup.pino, logs], ...(adapter === 'fastify' ? FASTIFY_PINO_ROUTES : {}) }),
      ClsModule.forRoot({ global: true, middleware: setup.cls }),
      ...(setup.overwriting ? [OverwritingModule] : []),
    ],
    controllers: [ProbeController],
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

async function until<T>(read: () => T | undefined, timeoutMs = 5000): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What each party took as the request's id. */
interface Ids {
  header: unknown;
  pinoRequestLog: unknown;
  pinoAppLog: unknown;
  cls: unknown;
  fromRequest: unknown;
  fromContext: unknown;
  event: unknown;
}

const INCOMING: [string, string | undefined][] = [
  ['a valid X-Request-ID', 'kept'],
  ['no X-Request-ID', undefined],
  ['an X-Request-ID with a space', 'hello world'],
  ['a 200-character X-Request-ID', 'a'.repeat(200)],
];

let sequence = 0;

/** One request to `path`, and the id every party took for it: found by a distinct id and a query only it has. */
async function idsOf(
  app: INestApplication,
  logs: LogLines,
  capture: CaptureServer | undefined,
  incoming: string | undefined,
  path = '/ids',
): Promise<{ ids: Ids; sent?: string }> {
  const n = ++sequence;
  const url = `${path}${path.includes('?') ? '&' : '?'}probe=${n}`;
  const distinct = randomUUID(); // an anonymous posthog-js id: the shape the frontend header is taken in
  const sent = incoming === 'kept' ? `client-${process.pid}-${n}` : incoming;
  let call = request(app.getHttpServer()).get(url).set('X-POSTHOG-DISTINCT-ID', distinct);
  if (sent !== undefined) call = call.set('X-Request-ID', sent);
  const res = await call;
  const pinoLine = (msg: string) => logs.lines.find((line) => line.msg === msg && line.req?.url === url);
  const completed = await until(() => pinoLine('request completed'));
  const event = capture && (await until(() => capture.events.find((e) => e.event === 'api_request' && e.distinct_id === distinct)));
  const body = path.startsWith('/ids') ? res.body : {};
  return {
    sent,
    ids: {
      header: res.headers['x-request-id'],
      pinoRequestLog: completed?.req?.id,
      pinoAppLog: path.startsWith('/ids') ? pinoLine('handled')?.req?.id : completed?.req?.id,
      cls: body.cls ?? null,
      fromRequest: body.fromRequest ?? null,
      fromContext: body.fromContext ?? null,
      event: event?.properties.request_id,
    },
  };
}

/** The id everyone should have taken: the client's when valid, else one new UUID. */
function expectOneId({ ids, sent }: { ids: Ids; sent?: string }, expected: Partial<Ids> = {}): void {
  const id = sent !== undefined && sent.startsWith('client-') ? sent : (ids.header as string);
  if (sent === undefined || !sent.startsWith('client-')) expect(id).toMatch(UUID_V4);
  expect(ids).toEqual({
    header: id,
    pinoRequestLog: id,
    pinoAppLog: id,
    cls: id,
    fromRequest: id,
    fromContext: id,
    event: id,
    ...expected,
  });
}

describe.each(ADAPTERS)('one request id with nestjs-pino and nestjs-cls over %s', (adapter) => {
  let capture: CaptureServer;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
  });

  afterAll(async () => {
    await capture.stop();
  });

  /** Boots an app for the tests of one `describe`, and closes it after them. */
  function appWith(setup: () => Setup) {
    const handle = { app: undefined as unknown as INestApplication, logs: new LogLines() };
    beforeAll(async () => {
      handle.app = await boot(adapter, setup(), handle.logs);
    });
    afterAll(async () => {
      await handle.app.close();
    });
    return handle;
  }

  describe("with pino-http's and nestjs-cls's recipes, unchanged", () => {
    const target = appWith(() => ({ telemetry: capture.url, pino: pinoRecipe, cls: clsRecipe }));

    it.each(INCOMING)('pino, cls, the response header and the events share one id, given %s', async (_label, incoming) => {
      expectOneId(await idsOf(target.app, target.logs, capture, incoming));
    });
  });

  describe("with pino-http's default and requestIdOf in nestjs-cls's idGenerator", () => {
    const target = appWith(() => ({ telemetry: capture.url, pino: pinoDefault, cls: clsWithHelper }));

    it.each(INCOMING)('pino, cls, the response header and the events share one id, given %s', async (_label, incoming) => {
      expectOneId(await idsOf(target.app, target.logs, capture, incoming));
    });
  });

  describe("with nestjs-cls's recipe as its docs print it", () => {
    const target = appWith(() => ({ telemetry: capture.url, pino: pinoRecipe, cls: clsAsPrinted }));

    it("gets a new id for cls alone: Node's header names are lower case, so req.headers['X-Request-Id'] is never there", async () => {
      const seen = await idsOf(target.app, target.logs, capture, 'kept');
      expect(seen.ids.cls).toMatch(UUID_V4);
      expectOneId(seen, { cls: seen.ids.cls });
    });
  });

  describe('with an app that sets its own X-Request-ID after the module', () => {
    const target = appWith(() => ({ telemetry: capture.url, pino: pinoRecipe, cls: clsRecipe, overwriting: true }));

    it.each(INCOMING)('the response header is still the id of the events, given %s', async (_label, incoming) => {
      expectOneId(await idsOf(target.app, target.logs, capture, incoming));
    });

    it.each([
      ['an object', '/raw'],
      ['a flat list', '/raw?list'],
    ])("the response header is still the id of the events when writeHead's fields hold another one (%s)", async (_label, path) => {
      const seen = await idsOf(target.app, target.logs, capture, undefined, path);
      expectOneId(seen, { cls: null, fromRequest: null, fromContext: null });
    });
  });

  describe('responses, with and without the module', () => {
    const withModule = appWith(() => ({ telemetry: capture.url, pino: pinoRecipe, cls: clsRecipe }));
    const without = appWith(() => ({ pino: pinoRecipe, cls: clsRecipe }));

    it.each([
      ['GET', '/hello'],
      ['GET', '/items/7'],
      ['GET', '/items/abc'],
      ['GET', '/boom'],
      ['GET', '/no/such/route'],
      ['POST', '/echo'],
    ])('are the same status and bytes for %s %s', async (method, path) => {
      for (const incoming of ['client-id-1', undefined, 'hello world']) {
        const answers = await Promise.all(
          [withModule.app, without.app].map(async (app) => {
            const agent = request(app.getHttpServer());
            let call = method === 'POST' ? agent.post(path).send({ message: 'hi' }) : agent.get(path);
            if (incoming !== undefined) call = call.set('X-Request-ID', incoming);
            const res = await call.buffer(true).parse((stream, done) => {
              const chunks: Buffer[] = [];
              stream.on('data', (chunk: Buffer) => chunks.push(chunk));
              stream.on('end', () => done(null, Buffer.concat(chunks)));
            });
            return { status: res.status, contentType: res.headers['content-type'], body: (res.body as Buffer).toString('utf8') };
          }),
        );
        expect(answers[0]).toEqual(answers[1]);
      }
    });
  });
});

describe('docs/recipes.md', () => {
  const readme = readFileSync(new URL('../docs/recipes.md', import.meta.url), 'utf8');
  const start = readme.indexOf('## One request id with nestjs-pino and nestjs-cls');
  const section = readme.slice(start, readme.indexOf('\n## ', start));
  /** Code compared without whitespace and semicolons (the compiled test keeps the rest as written). */
  const bare = (code: string) => code.replace(/[\s;]/g, '');

  it.each([
    ["pino-http's genReqId", pinoRecipe.genReqId],
    ["nestjs-cls's idGenerator", clsRecipe.idGenerator],
    ["nestjs-cls's idGenerator with requestIdOf", clsWithHelper.idGenerator],
  ])('shows the recipe tested here: %s', (_label, recipe) => {
    expect(start).toBeGreaterThan(0);
    expect(bare(section)).toContain(bare(String(recipe)));
  });
});

import 'reflect-metadata';
import * as Sentry from '@sentry/node';
import { HttpModule, HttpService } from '@nestjs/axios';
import {
  Controller,
  Get,
  Headers,
  Inject,
  Module,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { LoggerModule, PinoLogger } from 'nestjs-pino';
import {
  currentTraceparent,
  getRequestContext,
  POSTHOG_CLIENT,
  telemetryLogFields,
  TelemetryModule,
  type TelemetryModuleOptions,
} from 'nestjs-posthog-telemetry';
import { createServer, get as httpGet, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { PostHog } from 'posthog-node';
import { firstValueFrom } from 'rxjs';
// nestjs-pino keeps one pino-http middleware per process, made from the first configuration it sees: each app here gets its own.
import { resetRootLogger } from '../node_modules/nestjs-pino/dist/esm/rootLogger.js';
import { CaptureServer, type CapturedEvent } from './support/capture-server.js';
import { SentryServer } from './support/sentry-server.js';
import { ADAPTERS, sendingTo, type AdapterName } from './support/test-app.js';

/**
 * Outbound propagation and trace context, with two Nest services on loopback, both running the
 * module: service A's handlers call service B with fetch, `@nestjs/axios` and node:http; one journey, one
 * `request_id` and one `trace_id` across the hop, as the loopback PostHog receives them. A third server (C)
 * stands for a host the app excludes.
 */

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;
const INCOMING_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const INCOMING_PARENT = '00f067aa0ba902b7';

/** Where A's handlers call: set once B and C listen. */
const targets = { b: '', c: '' };
/** What B answered to `/a/boom`'s call. */
let echoedBeforeBoom: Received | undefined;

/** What B (or C) received. */
interface Received {
  requestId: string | null;
  traceparent: string | null;
  own: string | null;
  context?: { requestId?: string; traceId?: string; spanId?: string } | null;
}

function received(headers: IncomingHttpHeaders): Received {
  const one = (name: string) => (typeof headers[name] === 'string' ? (headers[name] as string) : null);
  return { requestId: one('x-request-id'), traceparent: one('traceparent'), own: one('x-app') };
}

@Controller('b')
class ServiceBController {
  @Get('echo')
  echo(@Headers() headers: IncomingHttpHeaders): Received {
    const context = getRequestContext();
    return {
      ...received(headers),
      context: context ? { requestId: context.requestId, traceId: context.traceId, spanId: context.spanId } : null,
    };
  }
}

/** node:http GET, answered as JSON; `headers` as an object or a flat list. */
function getJson(url: string, headers: Record<string, string> | string[] = {}): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'GET', headers: headers as never }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (error) {
          reject(error);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const OWN = { 'X-Request-ID': 'set-by-the-app', traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, 'X-App': 'yes' };

/** Sets `request.user` from `Authorization: Bearer <id>` when present, never rejects. */
class OptionalUser implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest();
    const match = /^Bearer (\w+)$/.exec(request.headers.authorization ?? '');
    if (match) request.user = { id: match[1] };
    return true;
  }
}

@Controller('a')
@UseGuards(OptionalUser)
class ServiceAController {
  constructor(
    private readonly http: HttpService,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
  ) {}

  @Get('fetch')
  async viaFetch() {
    return (await fetch(`${targets.b}/b/echo`)).json();
  }

  @Get('axios')
  async viaAxios() {
    return (await firstValueFrom(this.http.get(`${targets.b}/b/echo`))).data;
  }

  @Get('http')
  viaHttp() {
    return getJson(`${targets.b}/b/echo`);
  }

  /** Each client, with headers the app sets itself. */
  @Get('own')
  async own() {
    // A flat list, as Node takes it: `Host` too, which Node adds only to headers given as an object.
    const list = ['Host', new URL(targets.b).host, ...Object.entries(OWN).flat()];
    return {
      fetch: await (await fetch(`${targets.b}/b/echo`, { headers: OWN })).json(),
      axios: (await firstValueFrom(this.http.get(`${targets.b}/b/echo`, { headers: OWN }))).data,
      http: await getJson(`${targets.b}/b/echo`, OWN),
      httpList: await getJson(`${targets.b}/b/echo`, list),
      // The list is the app's: it is not changed.
      listAfter: list,
    };
  }

  /** Calls to a host the app excludes. */
  @Get('excluded')
  async excluded() {
    await (await fetch(`${targets.c}/c`)).text();
    await firstValueFrom(this.http.get(`${targets.c}/c`));
    await new Promise<void>((done) => httpGet(`${targets.c}/c`, (res) => res.resume().on('end', done)));
    return { ok: true };
  }

  /** The app's own PostHog capture, flushed while the request runs; and the traceparent helper. */
  @Get('capture')
  async capture() {
    this.posthog.capture({ distinctId: 'someone', event: 'app_event' });
    await this.posthog.flush();
    return { traceparent: currentTraceparent() ?? null };
  }

  @Get('boom')
  async boom() {
    echoedBeforeBoom = (await (await fetch(`${targets.b}/b/echo`)).json()) as Received;
    throw new Error('failed after calling B');
  }
}

async function boot(
  adapter: AdapterName,
  module: { imports?: any[]; controllers: any[] },
  telemetry: TelemetryModuleOptions,
): Promise<INestApplication> {
  @Module({
    imports: [TelemetryModule.forRoot({ environment: 'test', ...telemetry }), ...(module.imports ?? [])],
    controllers: module.controllers,
  })
  class AppModule {}
  const app =
    adapter === 'fastify'
      ? await NestFactory.create(AppModule, new FastifyAdapter(), { logger: false, abortOnError: false })
      : await NestFactory.create(AppModule, { logger: false, abortOnError: false });
  await app.listen(0, '127.0.0.1');
  return app;
}

const urlOf = (server: { address(): AddressInfo | string | null }) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

/** A plain server that records the headers it gets. */
async function recordingServer(): Promise<{ server: Server; url: string; headers: IncomingHttpHeaders[] }> {
  const headers: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    headers.push(req.headers);
    res.setHeader('Connection', 'close');
    res.setHeader('Content-Type', 'application/json');
    res.end('{}');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { server, url: urlOf(server), headers };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((done) => server.close(() => done()));
}

const apiRequest = (capture: CaptureServer, requestId: string, endpoint: string): CapturedEvent | undefined =>
  capture.eventsNamed('api_request', (e) => e.properties.request_id === requestId && e.properties.endpoint === endpoint)[0];

describe.each(ADAPTERS)('outbound calls and trace context, over %s', (adapter) => {
  let capture: CaptureServer;
  let c: Awaited<ReturnType<typeof recordingServer>>;
  let serviceA: INestApplication;
  let serviceB: INestApplication;
  let a: string;
  let sequence = 0;
  const nextId = (what: string) => `outbound-${adapter}-${what}-${++sequence}`;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    c = await recordingServer();
    serviceB = await boot(adapter, { controllers: [ServiceBController] }, sendingTo(capture.url));
    targets.b = urlOf(serviceB.getHttpServer());
    targets.c = c.url;
    const excluded = c.url;
    serviceA = await boot(
      adapter,
      { imports: [HttpModule], controllers: [ServiceAController] },
      sendingTo(capture.url, { propagateTo: (url) => !url.startsWith(excluded) }),
    );
    a = urlOf(serviceA.getHttpServer());
  });
  afterAll(async () => {
    await serviceA?.close();
    await serviceB?.close();
    await closeServer(c.server);
    await capture.stop();
  });

  /** A's and B's `api_request` of one journey. */
  async function journey(requestId: string, endpoint: string): Promise<{ a: CapturedEvent; b: CapturedEvent }> {
    await capture.waitFor(
      () => apiRequest(capture, requestId, endpoint) !== undefined && apiRequest(capture, requestId, '/b/echo') !== undefined,
    );
    return { a: apiRequest(capture, requestId, endpoint)!, b: apiRequest(capture, requestId, '/b/echo')! };
  }

  it.each(['fetch', 'axios', 'http'])(
    'carries the request id and a traceparent to the next service with %s: one journey, one trace',
    async (via) => {
      const id = nextId(via);
      const answer: Received = await getJson(`${a}/a/${via}`, { 'X-Request-ID': id, Authorization: 'Bearer user_7' });
      expect(answer.requestId).toBe(id);
      const [, traceId, parentSpanId, flags] = TRACEPARENT.exec(answer.traceparent ?? '') ?? [];
      expect(traceId).toBeDefined();
      expect(flags).toBe('01');

      const events = await journey(id, `/a/${via}`);
      // A started the trace (no traceparent came in); its span is the parent of B's.
      expect(events.a.properties).toMatchObject({ request_id: id, trace_id: traceId, span_id: parentSpanId, user_id: 'user_7' });
      expect(events.a.properties).not.toHaveProperty('parent_span_id');
      expect(events.b.properties).toMatchObject({ request_id: id, trace_id: traceId, parent_span_id: parentSpanId });
      expect(events.b.properties.span_id).toMatch(/^[0-9a-f]{16}$/);
      expect(events.b.properties.span_id).not.toBe(parentSpanId);
      // B's own code sees the same journey.
      expect(answer.context).toEqual({ requestId: id, traceId, spanId: events.b.properties.span_id });
    },
  );

  it('continues an incoming traceparent, with its sampled flag, and starts a new trace for an invalid one', async () => {
    const sampled = nextId('incoming');
    const unsampled = nextId('unsampled');
    const invalid = nextId('invalid');
    const first: Received = await getJson(`${a}/a/fetch`, {
      'X-Request-ID': sampled,
      traceparent: `00-${INCOMING_TRACE}-${INCOMING_PARENT}-01`,
    });
    const second: Received = await getJson(`${a}/a/axios`, {
      'X-Request-ID': unsampled,
      traceparent: `00-${INCOMING_TRACE}-${INCOMING_PARENT}-00`,
    });
    const third: Received = await getJson(`${a}/a/http`, {
      'X-Request-ID': invalid,
      traceparent: `00-${'0'.repeat(32)}-${INCOMING_PARENT}-01`,
    });

    expect(first.traceparent).toMatch(new RegExp(`^00-${INCOMING_TRACE}-[0-9a-f]{16}-01$`));
    expect(second.traceparent).toMatch(new RegExp(`^00-${INCOMING_TRACE}-[0-9a-f]{16}-00$`));
    expect(third.traceparent).toMatch(TRACEPARENT);
    expect(third.traceparent).not.toContain('0'.repeat(32));

    const one = await journey(sampled, '/a/fetch');
    expect(one.a.properties).toMatchObject({ trace_id: INCOMING_TRACE, parent_span_id: INCOMING_PARENT });
    expect(one.b.properties).toMatchObject({ trace_id: INCOMING_TRACE, parent_span_id: one.a.properties.span_id });
    const two = await journey(unsampled, '/a/axios');
    expect(two.b.properties.trace_id).toBe(INCOMING_TRACE);
    const three = await journey(invalid, '/a/http');
    expect(three.a.properties).not.toHaveProperty('parent_span_id');
    expect(three.b.properties.trace_id).toBe(three.a.properties.trace_id);
  });

  it('keeps the headers the app set itself, with every client, and never changes its header list', async () => {
    const id = nextId('own');
    const answer = await getJson(`${a}/a/own`, { 'X-Request-ID': id });
    for (const via of ['fetch', 'axios', 'http', 'httpList']) {
      expect({ via, ...answer[via], context: undefined }).toEqual({
        via,
        requestId: OWN['X-Request-ID'],
        traceparent: OWN.traceparent,
        own: 'yes',
        context: undefined,
      });
    }
    expect(answer.listAfter).toEqual(['Host', new URL(targets.b).host, ...Object.entries(OWN).flat()]);
  });

  it('sends nothing to a host the app excludes', async () => {
    const id = nextId('excluded');
    const before = c.headers.length;
    await getJson(`${a}/a/excluded`, { 'X-Request-ID': id });
    const got = c.headers.slice(before);
    expect(got).toHaveLength(3);
    for (const headers of got) {
      expect(headers['x-request-id']).toBeUndefined();
      expect(headers.traceparent).toBeUndefined();
    }
  });

  it("never puts an operation's ids on the module's own deliveries to PostHog, even when flushed during a request", async () => {
    const id = nextId('capture');
    const answer = await getJson(`${a}/a/capture`, { 'X-Request-ID': id });
    await capture.waitFor(
      () =>
        capture.eventsNamed('app_event', (e) => e.properties.request_id === id).length === 1 &&
        apiRequest(capture, id, '/a/capture') !== undefined,
    );
    const [event] = capture.eventsNamed('app_event', (e) => e.properties.request_id === id);
    const own = apiRequest(capture, id, '/a/capture')!;
    // The app's own capture carries the operation's trace too.
    expect(event.properties).toMatchObject({ trace_id: own.properties.trace_id, span_id: own.properties.span_id });
    expect(answer.traceparent).toBe(`00-${own.properties.trace_id}-${own.properties.span_id}-01`);
    expect(capture.requestHeaders.length).toBeGreaterThan(0);
    for (const headers of capture.requestHeaders) {
      expect(headers['x-request-id']).toBeUndefined();
      expect(headers.traceparent).toBeUndefined();
    }
  });
});

describe('propagation turned off', () => {
  let capture: CaptureServer;
  let serviceA: INestApplication;
  let serviceB: INestApplication;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    serviceB = await boot('express', { controllers: [ServiceBController] }, sendingTo(capture.url));
    targets.b = urlOf(serviceB.getHttpServer());
    serviceA = await boot(
      'express',
      { imports: [HttpModule], controllers: [ServiceAController] },
      sendingTo(capture.url, { propagate: false }),
    );
  });
  afterAll(async () => {
    await serviceA?.close();
    await serviceB?.close();
    await capture.stop();
  });

  it('adds no header with `propagate: false`', async () => {
    const a = urlOf(serviceA.getHttpServer());
    for (const via of ['fetch', 'axios', 'http']) {
      const answer: Received = await getJson(`${a}/a/${via}`, { 'X-Request-ID': `off-${via}` });
      // B made its own id: none came.
      expect(answer.requestId).not.toBe(`off-${via}`);
      expect(answer.traceparent).toBeNull();
    }
  });
});

/** pino's log lines, parsed, as pino writes them. */
class LogLines extends Writable {
  readonly lines: Record<string, any>[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') this.lines.push(JSON.parse(line));
    done();
  }
}

@Controller('logged')
@UseGuards(OptionalUser)
class LoggedController {
  constructor(private readonly logger: PinoLogger) {}

  @Get()
  handled() {
    this.logger.info('handled');
    return { ok: true };
  }
}

describe.each(ADAPTERS)('the nestjs-pino recipe, over %s', (adapter) => {
  let capture: CaptureServer;
  let app: INestApplication;
  const logs = new LogLines();

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    resetRootLogger();
    const routes = adapter === 'fastify' ? { forRoutes: [{ path: '{*path}', method: 0 /* RequestMethod.GET */ }] } : {};
    app = await boot(
      adapter,
      { imports: [LoggerModule.forRoot({ pinoHttp: [{ mixin: telemetryLogFields }, logs], ...routes })], controllers: [LoggedController] },
      sendingTo(capture.url),
    );
  });
  afterAll(async () => {
    await app?.close();
    await capture.stop();
  });

  it("stamps request_id, trace_id and the user on the app's log lines and pino-http's own", async () => {
    const id = `pino-${adapter}`;
    await getJson(`${urlOf(app.getHttpServer())}/logged`, {
      'X-Request-ID': id,
      Authorization: 'Bearer user_9',
      traceparent: `00-${INCOMING_TRACE}-${INCOMING_PARENT}-01`,
    });
    await capture.waitFor(() => apiRequest(capture, id, '/logged') !== undefined);
    const event = apiRequest(capture, id, '/logged')!;
    const deadline = Date.now() + 5000;
    while (!logs.lines.some((l) => l.msg === 'request completed') && Date.now() < deadline)
      await new Promise((done) => setTimeout(done, 10));
    const expected = { request_id: id, trace_id: INCOMING_TRACE, span_id: event.properties.span_id, user_id: 'user_9' };
    expect(logs.lines.find((l) => l.msg === 'handled')).toMatchObject(expected);
    expect(logs.lines.find((l) => l.msg === 'request completed')).toMatchObject(expected);
    expect(event.properties.trace_id).toBe(INCOMING_TRACE);
  });

  it('stamps nothing outside operations', () => {
    expect(telemetryLogFields()).toEqual({});
    expect(currentTraceparent()).toBeUndefined();
  });
});

/**
 * With the app's Sentry tracing every request: the module uses Sentry's active trace instead of starting
 * another, so PostHog events, Sentry's error event and the next service share one trace id. Last in the
 * file: Sentry's client is process-wide. Without the Fastify integration: see `sentryFor()`.
 */
describe('with Sentry tracing on', () => {
  let capture: CaptureServer;
  let sentry: SentryServer;
  let serviceA: INestApplication;
  let serviceB: INestApplication;

  beforeAll(async () => {
    sentry = await new SentryServer().start();
    Sentry.init({
      dsn: sentry.dsn,
      environment: 'outbound',
      tracesSampleRate: 1,
      integrations: (integrations: { name: string }[]) => integrations.filter((i) => i.name !== 'Fastify'),
    } as Parameters<typeof Sentry.init>[0]);
    capture = await new CaptureServer().start();
    serviceB = await boot('express', { controllers: [ServiceBController] }, sendingTo(capture.url));
    targets.b = urlOf(serviceB.getHttpServer());
    serviceA = await boot('express', { imports: [HttpModule], controllers: [ServiceAController] }, sendingTo(capture.url));
  });
  afterAll(async () => {
    await serviceA?.close();
    await serviceB?.close();
    await Sentry.close(2000);
    await capture.stop();
    await sentry.stop();
  });

  it("uses Sentry's trace id: PostHog events, the Sentry error and the next service share it", async () => {
    const id = 'outbound-sentry-traced';
    const a = urlOf(serviceA.getHttpServer());
    await new Promise<void>((done) => httpGet(`${a}/a/boom`, { headers: { 'X-Request-ID': id } }, (res) => res.resume().on('end', done)));
    await capture.waitFor(
      () =>
        capture.eventsNamed('api_error', (e) => e.properties.request_id === id).length === 1 &&
        apiRequest(capture, id, '/a/boom') !== undefined &&
        apiRequest(capture, id, '/b/echo') !== undefined,
    );
    await sentry.waitForRequests(id);
    const [apiError] = capture.eventsNamed('api_error', (e) => e.properties.request_id === id);
    const [sentryEvent] = sentry.eventsFor(id);
    const sentryTrace = (sentryEvent.contexts as { trace?: { trace_id?: string } } | undefined)?.trace?.trace_id;
    expect(sentryTrace).toMatch(/^[0-9a-f]{32}$/);
    expect(apiError.properties.trace_id).toBe(sentryTrace);
    expect(apiRequest(capture, id, '/a/boom')!.properties.trace_id).toBe(sentryTrace);
    // A's operation is a child of Sentry's span; its call to B carries the same trace.
    expect(apiError.properties.parent_span_id).toMatch(/^[0-9a-f]{16}$/);
    expect(echoedBeforeBoom?.traceparent).toBe(`00-${sentryTrace}-${apiError.properties.span_id}-01`);
    expect(echoedBeforeBoom?.requestId).toBe(id);
    // (B's own events are not asserted here: where Jest runs several files in one process, another file's copy
    // of @sentry/node, still alive, may handle B's incoming requests. One Sentry per process, as in an app,
    // continues A's trace in B; the journey across the hop is asserted above, without Sentry.)
    const [exception] = capture.eventsNamed('$exception', (e) => e.properties.request_id === id);
    expect(exception?.properties.trace_id).toBe(sentryTrace);
    // The trace is Sentry's own: its transaction (or spans) for A's request carry it.
    await Sentry.flush(2000);
    const deadline = Date.now() + 5000;
    while (!JSON.stringify(sentry.traces).includes(sentryTrace!) && Date.now() < deadline)
      await new Promise((done) => setTimeout(done, 25));
    expect(JSON.stringify(sentry.traces)).toContain(sentryTrace);
  });
});

/** With the app's Sentry not tracing (no span): Sentry's error event takes the operation's trace. */
describe('with Sentry, tracing off', () => {
  let capture: CaptureServer;
  let sentry: SentryServer;
  let serviceA: INestApplication;
  let serviceB: INestApplication;

  beforeAll(async () => {
    sentry = await new SentryServer().start();
    Sentry.init({
      dsn: sentry.dsn,
      environment: 'outbound-untraced',
      integrations: (integrations: { name: string }[]) => integrations.filter((i) => i.name !== 'Fastify'),
    } as Parameters<typeof Sentry.init>[0]);
    capture = await new CaptureServer().start();
    serviceB = await boot('express', { controllers: [ServiceBController] }, sendingTo(capture.url));
    targets.b = urlOf(serviceB.getHttpServer());
    serviceA = await boot('express', { imports: [HttpModule], controllers: [ServiceAController] }, sendingTo(capture.url));
  });
  afterAll(async () => {
    await serviceA?.close();
    await serviceB?.close();
    await Sentry.close(2000);
    await capture.stop();
    await sentry.stop();
  });

  it("gives Sentry's error event the operation's trace, continued from the caller", async () => {
    const id = 'outbound-sentry-untraced';
    const a = urlOf(serviceA.getHttpServer());
    await new Promise<void>((done) =>
      httpGet(`${a}/a/boom`, { headers: { 'X-Request-ID': id, traceparent: `00-${INCOMING_TRACE}-${INCOMING_PARENT}-01` } }, (res) =>
        res.resume().on('end', done),
      ),
    );
    // B's api_request comes from B's own sender, in its own batch: wait for it as well as A's api_error.
    await capture.waitFor(
      () =>
        capture.eventsNamed('api_error', (e) => e.properties.request_id === id).length === 1 &&
        apiRequest(capture, id, '/b/echo') !== undefined,
    );
    await sentry.waitForRequests(id);
    const [apiError] = capture.eventsNamed('api_error', (e) => e.properties.request_id === id);
    const [sentryEvent] = sentry.eventsFor(id);
    const trace = (sentryEvent.contexts as { trace?: { trace_id?: string; span_id?: string } } | undefined)?.trace;
    expect(apiError.properties.trace_id).toBe(INCOMING_TRACE);
    expect(trace).toMatchObject({ trace_id: INCOMING_TRACE, span_id: apiError.properties.span_id });
    expect(apiRequest(capture, id, '/b/echo')!.properties.trace_id).toBe(INCOMING_TRACE);
  });
});

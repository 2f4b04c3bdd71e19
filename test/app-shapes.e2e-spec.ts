import {
  BadRequestException,
  Catch,
  Controller,
  ForbiddenException,
  Get,
  Headers,
  HttpException,
  HttpStatus,
  Module,
  Post,
  Req,
  Sse,
  StreamableFile,
  UseFilters,
  type ArgumentsHost,
  type ExceptionFilter,
  type MessageEvent,
} from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { concat, delay, Observable, of, throwError } from 'rxjs';
import type { TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import { CaptureServer, type CapturedEvent } from './support/capture-server.js';
import { SentryServer, sentryFor, type SentryEnvelopeEvent } from './support/sentry-server.js';
import { ADAPTERS, type AdapterName, sendingTo } from './support/test-app.js';
import { ask, bootApp, comparable, type AppShape, type Ask, type TelemetryPlacement } from './support/twin-apps.js';

/**
 * The module never changes what the app answers, whatever shape the app has:
 * its own exception filters (global in any module and any order, per
 * controller, per method, for one class or all), a global prefix, CORS, health
 * probes, streams. Each app here is booted twice, as `main.ts` boots it, with
 * and without the module; the answers must be identical byte for byte, and
 * the events on the loopback PostHog and Sentry must say what really happened.
 */

const FIXED_TIME = '2026-01-01T00:00:00.000Z';
let sequence = 0;
/** A request id no other test uses. */
const fresh = (label: string) => `${label}-${process.pid}-${++sequence}`;
/**
 * A message of the request's own: the same in both twins, and different for each request, since Sentry's
 * Dedupe drops identical consecutive events.
 */
const said = (label: string, requestId: string) => `${label} (${requestId})`;

// ---- The Nest docs' exception filter recipe (with a fixed clock, so two runs compare byte for byte).
@Catch(HttpException)
class HttpExceptionFilter implements ExceptionFilter {
  catch(exception: HttpException, host: ArgumentsHost) {
    const ctx = host.switchToHttp();
    const response = ctx.getResponse();
    const request = ctx.getRequest();
    const status = exception.getStatus();
    const body = { statusCode: status, timestamp: FIXED_TIME, path: request.url, from: 'docs-recipe' };
    // Express and Fastify answer differently: the recipe's two variants.
    if (typeof response.code === 'function') response.code(status).send(body);
    else response.status(status).json(body);
  }
}

/** An error of the app's domain, answered by a filter for that class only, provided in a submodule. */
class PaymentRequiredError extends Error {}

@Catch(PaymentRequiredError)
class PaymentRequiredFilter implements ExceptionFilter {
  catch(exception: PaymentRequiredError, host: ArgumentsHost) {
    reply(host, 402, { error: 'payment required', detail: exception.message });
  }
}

@Module({ providers: [{ provide: APP_FILTER, useClass: PaymentRequiredFilter }] })
class BillingModule {}

/** A catch-all filter of the app's that answers 501 for anything. */
@Catch()
class NotImplementedFilter implements ExceptionFilter {
  catch(_exception: unknown, host: ArgumentsHost) {
    reply(host, 501, { error: 'not implemented here' });
  }
}

/** Turns a validation error into a 400 of the app's own shape. */
@Catch(RangeError)
class RangeToBadRequestFilter implements ExceptionFilter {
  catch(exception: RangeError, host: ArgumentsHost) {
    reply(host, 400, { invalid: exception.message });
  }
}

@Catch(SyntaxError)
class MethodFilter implements ExceptionFilter {
  catch(_exception: SyntaxError, host: ArgumentsHost) {
    reply(host, 422, { from: 'method filter' });
  }
}

function reply(host: ArgumentsHost, status: number, body: unknown): void {
  const response = host.switchToHttp().getResponse();
  if (typeof response.code === 'function') response.code(status).send(body);
  else response.status(status).json(body);
}

@Controller('shop')
@UseFilters(RangeToBadRequestFilter)
class ShopController {
  @Get('forbidden/:id')
  forbidden() {
    throw new ForbiddenException('members only');
  }

  @Get('pay/:id')
  pay(@Headers('x-request-id') id: string) {
    throw new PaymentRequiredError(said('card declined', id));
  }

  @Get('range/:id')
  range(@Headers('x-request-id') id: string) {
    throw new RangeError(said('quantity out of range', id));
  }

  @Get('syntax')
  @UseFilters(MethodFilter)
  syntax(@Headers('x-request-id') id: string) {
    throw new SyntaxError(said('bad syntax', id));
  }

  @Get('crash/:id')
  crash(@Headers('x-request-id') id: string) {
    throw new Error(said('database exploded', id));
  }

  /** An error that quotes the URL it was asked for, as many do. */
  @Get('quote/:id')
  quote(@Req() req: { originalUrl?: string; url: string }) {
    throw new Error(`could not load ${req.originalUrl ?? req.url}`);
  }

  @Get('bad')
  bad() {
    throw new BadRequestException('bad input');
  }

  @Get('items/:id')
  item() {
    return { id: 1, name: 'book' };
  }

  @Post('items')
  create() {
    return { created: true };
  }
}

@Controller()
class ProbesController {
  @Get('health')
  health() {
    return { status: 'ok' };
  }

  @Get('healthz')
  healthz() {
    return 'ok';
  }

  @Get('v1/readyz')
  readyz() {
    return 'ready';
  }
}

@Controller('live')
class StreamsController {
  @Sse('sse-fails')
  sseFails(@Headers('x-request-id') id: string): Observable<MessageEvent> {
    return concat(of({ data: { n: 1 } }, { data: { n: 2 } }), throwError(() => new Error(said('feed broke midway', id))).pipe(delay(20)));
  }

  @Sse('sse-ok')
  sseOk(): Observable<MessageEvent> {
    return of({ data: { n: 1 } }, { data: { n: 2 } });
  }

  @Get('file-fails')
  fileFails(@Headers('x-request-id') id: string): StreamableFile {
    const source = new Readable({ read: () => undefined });
    source.push('first chunk of the report\n');
    setTimeout(() => source.destroy(new Error(said('disk read failed', id))), 30);
    return new StreamableFile(source, { type: 'text/plain' });
  }

  @Get('file-slow')
  fileSlow(): StreamableFile {
    const source = new Readable({ read: () => undefined });
    source.push('a slow report\n');
    const timer = setInterval(() => source.push('more\n'), 20);
    source.on('close', () => clearInterval(timer));
    return new StreamableFile(source, { type: 'text/plain' });
  }
}

let capture: CaptureServer;
let sentry: SentryServer;

beforeAll(async () => {
  capture = await new CaptureServer().start();
  sentry = await new SentryServer().start();
});

afterAll(async () => {
  await capture.stop();
  await sentry.stop();
});

const telemetryOptions = (): TelemetryModuleOptions => sendingTo(capture.url, { sentry: sentryFor(sentry) });

/** The same requests to the app without and with the module: every answer identical. */
async function compareTwins(
  adapter: AdapterName,
  shape: AppShape,
  asks: Ask[],
  { placement = 'first', telemetry = telemetryOptions() }: { placement?: TelemetryPlacement; telemetry?: TelemetryModuleOptions } = {},
): Promise<{ requestId: string; status: number; body: string }[]> {
  const bare = await bootApp(adapter, shape);
  const withModule = await bootApp(adapter, shape, telemetry, placement);
  try {
    const seen: { requestId: string; status: number; body: string }[] = [];
    for (const a of asks) {
      const requestId = fresh('req');
      const withHeaders = { ...a, headers: { 'x-request-id': requestId, ...(a.headers ?? {}) } };
      const expected = await ask(bare, withHeaders);
      const actual = await ask(withModule, withHeaders);
      expect({ ask: `${a.method ?? 'GET'} ${a.path}`, ...comparable(actual) }).toEqual({
        ask: `${a.method ?? 'GET'} ${a.path}`,
        ...comparable(expected),
      });
      expect(actual.headers['x-request-id']).toBe(requestId);
      seen.push({ requestId, status: actual.status, body: actual.body.toString() });
    }
    return seen;
  } finally {
    // A response the server cut (a failed stream) closes on the server a moment after the client saw the break;
    // the app is closed only once that request has ended there too.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await withModule.close();
    await bare.close();
  }
}

/** Waits for a request's events, then a little longer so a duplicate would show. */
async function eventsOf(requestId: string, expected: string[]): Promise<CapturedEvent[]> {
  await capture.waitFor(() => expected.every((name) => capture.forRequest(requestId).some((e) => e.event === name)));
  await new Promise((resolve) => setTimeout(resolve, 200));
  return capture.forRequest(requestId);
}

const names = (events: CapturedEvent[]) => events.map((e) => e.event).sort();
const sentryOf = (requestId: string): SentryEnvelopeEvent[] => sentry.eventsFor(requestId);
const exceptionsOf = (requestId: string) => capture.eventsNamed('$exception', (e) => e.properties.request_id === requestId);

describe.each(ADAPTERS)('the app answers as without the module, over %s', (adapter) => {
  describe.each<TelemetryPlacement>(['first', 'last'])("the app's own exception filters (TelemetryModule imported %s)", (placement) => {
    const shape: AppShape = {
      imports: [BillingModule],
      controllers: [ShopController],
      providers: [{ provide: APP_FILTER, useClass: HttpExceptionFilter }],
    };

    it("run exactly as without the module, and every error is reported with the status the app's filter sent", async () => {
      const [forbidden, pay, range, syntax, crash, bad, ok] = await compareTwins(
        adapter,
        shape,
        [
          { path: '/shop/forbidden/7' },
          { path: '/shop/pay/7' },
          { path: '/shop/range/7' },
          { path: '/shop/syntax' },
          { path: '/shop/crash/7' },
          { path: '/shop/bad' },
          { path: '/shop/items/7' },
        ],
        { placement },
      );
      // The docs' recipe answered the HTTP errors; the submodule's filter its own class; the controller's and method's theirs.
      expect(JSON.parse(forbidden.body)).toMatchObject({ statusCode: 403, from: 'docs-recipe', path: '/shop/forbidden/7' });
      expect(pay.status).toBe(402);
      expect(range.status).toBe(400);
      expect(syntax.status).toBe(422);
      expect(crash.status).toBe(500);
      expect(JSON.parse(bad.body)).toMatchObject({ statusCode: 400, from: 'docs-recipe' });
      expect(ok.status).toBe(200);

      for (const [answer, endpoint] of [
        [forbidden, '/shop/forbidden/:id'],
        [pay, '/shop/pay/:id'],
        [range, '/shop/range/:id'],
        [syntax, '/shop/syntax'],
        [bad, '/shop/bad'],
      ] as const) {
        const events = await eventsOf(answer.requestId, ['api_request', 'api_error']);
        expect(names(events)).toEqual(['api_error', 'api_request']);
        for (const event of events) expect(event.properties).toMatchObject({ endpoint, status_code: answer.status });
        // A filter's 4xx is not a server error: neither Error Tracking nor Sentry.
        expect(events.find((e) => e.event === 'api_error')!.properties.$exception_uuid).toBeUndefined();
        expect(exceptionsOf(answer.requestId)).toHaveLength(0);
        expect(sentryOf(answer.requestId)).toHaveLength(0);
      }

      // No filter of the app's took the crash: Nest's own 500, unhandled for Sentry.
      const crashEvents = await eventsOf(crash.requestId, ['api_request', 'api_error', '$exception']);
      expect(names(crashEvents)).toEqual(['$exception', 'api_error', 'api_request']);
      await sentry.waitForRequests(crash.requestId);
      const [crashInSentry] = sentryOf(crash.requestId);
      expect(sentryOf(crash.requestId)).toHaveLength(1);
      expect(crashInSentry.exception?.values?.[0]).toMatchObject({
        mechanism: { type: 'auto.http.nestjs_posthog_telemetry', handled: false },
      });

      expect(names(await eventsOf(ok.requestId, ['api_request']))).toEqual(['api_request']);
    });

    it("a catch-all filter of the app's answering 501 answers every error; the module reports 501, handled", async () => {
      const catchAll: AppShape = { controllers: [ShopController], providers: [{ provide: APP_FILTER, useClass: NotImplementedFilter }] };
      const [crash, forbidden, unknown] = await compareTwins(
        adapter,
        catchAll,
        [{ path: '/shop/crash/1' }, { path: '/shop/forbidden/1' }, { path: '/no/such/route' }],
        { placement },
      );
      expect(crash).toMatchObject({ status: 501, body: '{"error":"not implemented here"}' });
      expect(forbidden.status).toBe(501);
      expect(unknown.status).toBe(501);

      const events = await eventsOf(crash.requestId, ['api_request', 'api_error', '$exception']);
      expect(events.find((e) => e.event === 'api_error')!.properties).toMatchObject({ status_code: 501, endpoint: '/shop/crash/:id' });
      await sentry.waitForRequests(crash.requestId);
      expect(sentryOf(crash.requestId)).toHaveLength(1);
      expect(sentryOf(crash.requestId)[0].exception?.values?.[0]).toMatchObject({
        mechanism: { type: 'auto.http.nestjs_posthog_telemetry', handled: true },
      });
      // The unknown route stays an unknown route, whatever the app's filter answered.
      const unknownEvents = await eventsOf(unknown.requestId, ['api_request']);
      expect(unknownEvents.find((e) => e.event === 'api_request')!.properties.endpoint).toBe('(unmatched)');
    });

    it('app.useGlobalFilters() runs as without the module', async () => {
      const viaMain: AppShape = { controllers: [ShopController], setup: (app) => app.useGlobalFilters(new NotImplementedFilter()) };
      const [crash] = await compareTwins(adapter, viaMain, [{ path: '/shop/crash/2' }, { path: '/shop/bad' }], { placement });
      expect(crash.status).toBe(501);
      const events = await eventsOf(crash.requestId, ['api_request', 'api_error']);
      expect(events.find((e) => e.event === 'api_error')!.properties.status_code).toBe(501);
    });
  });

  describe('a global prefix', () => {
    const prefixed: AppShape = { controllers: [ShopController, ProbesController], setup: (app) => app.setGlobalPrefix('api') };
    const secrets = ['s3cr3t', 'jane@example.com', '8f14e45fceea167a5a36dedd4bea2543'];

    it('unknown routes and wrong methods stay (unmatched) 404s: no api_error, no raw path or query in any event', async () => {
      const answers = await compareTwins(adapter, prefixed, [
        { path: '/api/v1/reset-password/8f14e45fceea167a5a36dedd4bea2543?token=s3cr3t&session=s3cr3t&email=jane@example.com' },
        { method: 'DELETE', path: '/api/shop/items/8f14e45fceea167a5a36dedd4bea2543?session=s3cr3t' },
        { path: '/outside/the/prefix?session=s3cr3t' },
        { path: '/api/shop/items/3' },
      ]);
      for (const answer of answers.slice(0, 3)) {
        expect(answer.status).toBe(404);
        const events = await eventsOf(answer.requestId, ['api_request']);
        expect(names(events)).toEqual(['api_request']);
        expect(events[0].properties).toMatchObject({ endpoint: '(unmatched)', status_code: 404 });
        const wire = JSON.stringify(events);
        for (const secret of secrets) expect(wire).not.toContain(secret);
      }
      const matched = await eventsOf(answers[3].requestId, ['api_request']);
      expect(matched[0].properties.endpoint).toBe('/api/shop/items/:id');
    });

    it("an error's message never carries the raw path or query string", async () => {
      const [quote] = await compareTwins(adapter, prefixed, [{ path: '/api/shop/quote/8f14e45fceea167a5a36dedd4bea2543?session=s3cr3t' }]);
      expect(quote.status).toBe(500);
      const events = await eventsOf(quote.requestId, ['api_request', 'api_error', '$exception']);
      const apiError = events.find((e) => e.event === 'api_error')!;
      expect(apiError.properties.error_message).toBe('could not load /api/shop/quote/:id');
      for (const event of events) {
        expect(JSON.stringify(event)).not.toContain('s3cr3t');
        expect(JSON.stringify(event)).not.toContain('8f14e45fceea167a5a36dedd4bea2543');
      }
      await sentry.waitForRequests(quote.requestId);
      expect(JSON.stringify(sentryOf(quote.requestId)[0].exception)).not.toContain('s3cr3t');
    });

    it('health probes under the prefix are left out by default, wherever they sit', async () => {
      const answers = await compareTwins(adapter, prefixed, [
        { path: '/api/health' },
        { path: '/api/healthz' },
        { path: '/api/v1/readyz' },
      ]);
      await eventsOf((await compareTwins(adapter, prefixed, [{ path: '/api/shop/items/1' }]))[0].requestId, ['api_request']);
      for (const answer of answers) {
        expect(answer.status).toBe(200);
        expect(capture.forRequest(answer.requestId)).toEqual([]);
      }
    });
  });

  describe('CORS preflights', () => {
    const cors: AppShape = { controllers: [ShopController], setup: (app) => app.enableCors({ origin: 'https://app.example' }) };
    const preflight: Ask = {
      method: 'OPTIONS',
      path: '/shop/items',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'x-posthog-session-id,x-posthog-distinct-id,x-request-id',
      },
    };

    it('are answered as without the module and left out by default', async () => {
      const [answer, post] = await compareTwins(adapter, cors, [
        preflight,
        { method: 'POST', path: '/shop/items', headers: { origin: 'https://app.example' } },
      ]);
      expect(answer.status).toBe(204);
      await eventsOf(post.requestId, ['api_request']);
      expect(capture.forRequest(answer.requestId)).toEqual([]);
    });

    it('are recorded with capturePreflights: true', async () => {
      const [answer] = await compareTwins(adapter, cors, [preflight], { telemetry: { ...telemetryOptions(), capturePreflights: true } });
      const events = await eventsOf(answer.requestId, ['api_request']);
      expect(events[0].properties).toMatchObject({ method: 'OPTIONS', status_code: 204 });
    });
  });

  describe('streams', () => {
    const streams: AppShape = { controllers: [StreamsController] };

    it('an SSE Observable that fails midway is one api_error, with the status sent, and not a success', async () => {
      const [answer, ok] = await compareTwins(adapter, streams, [{ path: '/live/sse-fails' }, { path: '/live/sse-ok' }]);
      expect(answer.status).toBe(200);
      expect(answer.body).toContain('event: error');
      const events = await eventsOf(answer.requestId, ['api_request', 'api_error', '$exception']);
      expect(names(events)).toEqual(['$exception', 'api_error', 'api_request']);
      expect(events.find((e) => e.event === 'api_request')!.properties).toMatchObject({
        status_code: 200,
        success: false,
        endpoint: '/live/sse-fails',
      });
      expect(events.find((e) => e.event === 'api_error')!.properties).toMatchObject({
        status_code: 200,
        error_message: expect.stringContaining('feed broke midway'),
      });
      await sentry.waitForRequests(answer.requestId);
      expect(sentryOf(answer.requestId)).toHaveLength(1);

      const okEvents = await eventsOf(ok.requestId, ['api_request']);
      expect(names(okEvents)).toEqual(['api_request']);
      expect(okEvents[0].properties).toMatchObject({ status_code: 200, success: true });
    });

    it('a StreamableFile whose source fails midway is one api_error with the status sent, not a client abort', async () => {
      const [answer] = await compareTwins(adapter, streams, [{ path: '/live/file-fails' }]);
      expect(answer.status).toBe(200);
      const events = await eventsOf(answer.requestId, ['api_request', 'api_error']);
      expect(names(events).filter((n) => n !== '$exception')).toEqual(['api_error', 'api_request']);
      expect(events.find((e) => e.event === 'api_request')!.properties).toMatchObject({ status_code: 200, success: false });
      expect(events.find((e) => e.event === 'api_error')!.properties.error_message).toContain('disk read failed');
    });

    it('a client that leaves a stream is a 499 and no error', async () => {
      const app = await bootApp(adapter, streams, telemetryOptions());
      try {
        const requestId = fresh('leaves');
        const { port } = app.getHttpServer().address() as { port: number };
        await new Promise<void>((resolve) => {
          const req = httpRequest({ host: '127.0.0.1', port, path: '/live/file-slow', headers: { 'x-request-id': requestId } });
          req.on('response', (res) => res.once('data', () => (req.destroy(), resolve())));
          req.on('error', () => undefined);
          req.end();
        });
        const events = await eventsOf(requestId, ['api_request']);
        expect(names(events)).toEqual(['api_request']);
        expect(events[0].properties).toMatchObject({ status_code: 499, success: false });
      } finally {
        await app.close();
      }
    });
  });
});

describe('Nest exception filters are not shadowed by TelemetryModule in a submodule', () => {
  it.each(ADAPTERS)('an APP_FILTER of a module imported before TelemetryModule still runs (%s)', async (adapter) => {
    const [pay] = await compareTwins(adapter, { imports: [BillingModule], controllers: [ShopController] }, [{ path: '/shop/pay/3' }], {
      placement: 'last',
    });
    expect(pay.status).toBe(HttpStatus.PAYMENT_REQUIRED);
    expect(JSON.parse(pay.body)).toMatchObject({ error: 'payment required' });
  });
});

import {
  Catch,
  Controller,
  Get,
  HttpStatus,
  UseFilters,
  type ArgumentsHost,
  type ExceptionFilter,
  type INestApplication,
} from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { ignoreError, TelemetryExceptionCaptured, type TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import request from 'supertest';
import { CaptureServer, type CapturedEvent } from './support/capture-server.js';
import { ADAPTERS, createTestApp, sendingTo, type AdapterName } from './support/test-app.js';

class KnownGlitch extends Error {
  name = 'KnownGlitch';
}

/** An app's own filter: answers 418 with its own body, and tells the module through the decorator. */
@Catch()
class TeapotFilter implements ExceptionFilter {
  @TelemetryExceptionCaptured()
  catch(_exception: unknown, host: ArgumentsHost) {
    const reply = host.switchToHttp().getResponse();
    const body = { teapot: true };
    if (typeof reply.code === 'function') reply.code(HttpStatus.I_AM_A_TEAPOT).send(body);
    else reply.status(HttpStatus.I_AM_A_TEAPOT).json(body);
  }
}

/** The same filter without the decorator: the module sees the exception all the same, where Nest hands it to the filter. */
@Catch()
class SilentFilter implements ExceptionFilter {
  catch(_exception: unknown, host: ArgumentsHost) {
    const reply = host.switchToHttp().getResponse();
    if (typeof reply.code === 'function') reply.code(HttpStatus.I_AM_A_TEAPOT).send({ silent: true });
    else reply.status(HttpStatus.I_AM_A_TEAPOT).json({ silent: true });
  }
}

@Controller('tracked')
class ErrorsController {
  @Get('glitch')
  glitch() {
    throw new KnownGlitch('a glitch we know about');
  }

  @Get('marked')
  marked() {
    throw ignoreError(new Error('marked as not to be reported'));
  }

  @Get('self-marked')
  selfMarked() {
    throw Object.assign(new Error('marks itself'), { skipTelemetry: true });
  }

  @Get('maintenance')
  maintenance() {
    throw new Error('maintenance window: try later');
  }

  @Get('secret')
  secret() {
    throw new Error(
      'upstream refused Bearer abcDEF123456ghiJKL789 with key phc_abcdefghijklmnop1234 for https://api.example.com/v1?email=ann@example.com',
    );
  }

  @Get('rate-limited')
  rateLimited() {
    throw Object.assign(new Error('slow down'), { code: 'rate_limit_exceeded' });
  }

  @Get('email')
  email() {
    throw new Error('no account for ann.lee@example.com');
  }

  @Get('own-filter')
  @UseFilters(TeapotFilter)
  ownFilter() {
    throw new Error('handled by the app');
  }

  @Get('silent-filter')
  @UseFilters(SilentFilter)
  silentFilter() {
    throw new Error('handled silently by the app');
  }
}

describe.each(ADAPTERS)('error tracking over %s', (adapter: AdapterName) => {
  let capture: CaptureServer;
  let app: INestApplication;
  let sequence = 0;

  async function start(options: TelemetryModuleOptions = {}) {
    app = await createTestApp(adapter, sendingTo(capture.url, { ignoreErrors: [KnownGlitch, /maintenance window/], ...options }), {
      controllers: [ErrorsController],
    });
    return request(app.getHttpServer());
  }

  /** Sends one request, closes the app (delivering everything), and returns that request's events. */
  async function eventsOf(path: string, status: number, headers: Record<string, string> = {}, options?: TelemetryModuleOptions) {
    const http = await start(options);
    const id = `track-${adapter}-${++sequence}`;
    const res = await http.get(path).set({ 'X-Request-ID': id, ...headers });
    expect(res.status).toBe(status);
    await app.close();
    const events = capture.forRequest(id);
    const named = (name: string) => events.filter((e) => e.event === name);
    return { res, events, named };
  }

  beforeEach(async () => {
    capture = await new CaptureServer().start();
  });
  afterEach(async () => {
    await capture.stop();
  });

  it('sends a server error to PostHog Error Tracking once, linked to its api_error', async () => {
    // An anonymous visitor's id as posthog-js makes it (the only kind taken by default).
    const browser = '0190b7c2-5e1a-7c3d-9f00-1234567890ab';
    const { named } = await eventsOf('/errors/application', 500, { 'X-POSTHOG-SESSION-ID': 'sess-9', 'X-POSTHOG-DISTINCT-ID': browser });
    const [exception, ...more] = named('$exception');
    const [apiError] = named('api_error');
    expect(more).toEqual([]);
    expect(exception.distinct_id).toBe(browser);
    expect(exception.properties).toMatchObject({
      request_id: apiError.properties.request_id,
      endpoint: '/errors/application',
      error_type: 'application_error',
      status_code: 500,
      $session_id: 'sess-9',
      environment: 'test',
    });
    const [first] = exception.properties.$exception_list as { type: string; stacktrace?: { frames?: unknown[] } }[];
    expect(first.type).toBe('TypeError');
    expect(first.stacktrace?.frames?.length).toBeGreaterThan(0);
    expect(apiError.properties.$exception_uuid).toBe(exception.uuid);
  });

  it('leaves 4xx out of Error Tracking unless asked', async () => {
    const byDefault = await eventsOf('/items/99', 404);
    expect(byDefault.named('api_error')).toHaveLength(1);
    expect(byDefault.named('$exception')).toEqual([]);
    const asked = await eventsOf('/items/99', 404, {}, { captureExceptions: { minStatus: 400 } });
    expect(asked.named('$exception')).toHaveLength(1);
  });

  it('sends no $exception when turned off, or for a skipped route', async () => {
    const off = await eventsOf('/errors/application', 500, {}, { captureExceptions: false });
    expect(off.named('api_error')).toHaveLength(1);
    expect(off.named('$exception')).toEqual([]);
    const skipped = await eventsOf('/internal/boom', 500);
    expect(skipped.events).toEqual([]);
  });

  it.each([
    ['an ignored class', '/tracked/glitch'],
    ['an ignored message pattern', '/tracked/maintenance'],
    ['ignoreError()', '/tracked/marked'],
    ['an error that marks itself', '/tracked/self-marked'],
  ])('reports nothing for %s, and keeps its response and api_request', async (_label, path) => {
    const { res, events } = await eventsOf(path, 500);
    expect(res.body).toEqual({ statusCode: 500, message: 'Internal server error' });
    expect(events.map((e: CapturedEvent) => e.event)).toEqual(['api_request']);
    expect(events[0].properties).toMatchObject({ status_code: 500, success: false });
  });

  it("reports an exception an app's own filter handled, with the status the filter sent, decorated or not", async () => {
    const told = await eventsOf('/tracked/own-filter', 418);
    expect(told.res.body).toEqual({ teapot: true });
    expect(told.named('api_error')).toHaveLength(1);
    expect(told.named('api_error')[0].properties).toMatchObject({ status_code: 418, exception_type: 'Error' });
    const silent = await eventsOf('/tracked/silent-filter', 418);
    expect(silent.res.body).toEqual({ silent: true });
    expect(silent.named('api_error')).toHaveLength(1);
    expect(silent.named('api_error')[0].properties).toMatchObject({ status_code: 418, exception_type: 'Error' });
    expect(silent.named('api_request')[0].properties.status_code).toBe(418);
    // A 4xx the app's filter chose is not a server error.
    expect(silent.named('$exception')).toEqual([]);
  });

  it('applies errorCategories rules, and redacts emails when asked', async () => {
    const categorised = await eventsOf(
      '/tracked/rate-limited',
      500,
      {},
      { errorCategories: [{ category: 'rate_limited', match: 'rate_limit_exceeded' }] },
    );
    expect(categorised.named('api_error')[0].properties.error_type).toBe('rate_limited');
    const kept = await eventsOf('/tracked/email', 500);
    expect(kept.named('api_error')[0].properties.error_message).toBe('no account for ann.lee@example.com');
    const redacted = await eventsOf('/tracked/email', 500, {}, { redactEmails: true });
    expect(redacted.named('api_error')[0].properties.error_message).toBe('no account for [email]');
    expect(JSON.stringify(redacted.events)).not.toContain('ann.lee@example.com');
  });

  it("lets the app's own global filter answer, and reports the exception once with the status it sent", async () => {
    app = await createTestApp(adapter, sendingTo(capture.url), { providers: [{ provide: APP_FILTER, useClass: TeapotFilter }] });
    const id = `track-${adapter}-${++sequence}`;
    const res = await request(app.getHttpServer()).get('/errors/application').set('X-Request-ID', id);
    await app.close();
    expect(res.status).toBe(HttpStatus.I_AM_A_TEAPOT);
    expect(res.body).toEqual({ teapot: true });
    const errors = capture.forRequest(id).filter((e) => e.event === 'api_error');
    expect(errors).toHaveLength(1);
    expect(errors[0].properties.status_code).toBe(HttpStatus.I_AM_A_TEAPOT);
    expect(capture.forRequest(id).filter((e) => e.event === '$exception')).toEqual([]);
  });

  it('keeps secrets in an error message out of api_error and $exception', async () => {
    const { events, named } = await eventsOf('/tracked/secret', 500);
    expect(named('api_error')).toHaveLength(1);
    expect(named('$exception')).toHaveLength(1);
    const wire = JSON.stringify(events);
    for (const secret of ['abcDEF123456ghiJKL789', 'phc_abcdefghijklmnop1234', 'ann@example.com']) expect(wire).not.toContain(secret);
  });
});

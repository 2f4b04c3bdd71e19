import { Controller, Get, Inject, UseGuards, type INestApplication } from '@nestjs/common';
import { POSTHOG_CLIENT } from 'nestjs-posthog-telemetry';
import type { PostHog } from 'posthog-node';
import request from 'supertest';
import { DemoAuthGuard } from '../apps/demo/src/demo-auth.guard.js';
import { createBareApp } from './support/bare-app.js';
import { CaptureServer, type CapturedEvent } from './support/capture-server.js';
import { ADAPTERS, createTestApp, sendingTo } from './support/test-app.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** An anonymous posthog-js distinct id (UUIDv7), as its `tracing_headers` send it. */
const BROWSER_ID = '0193a5b2-7c4e-7d1f-9a2b-3c4d5e6f7a8b';
const SLOW_THRESHOLD_MS = 300;
const TRACEBACK_LIMIT = 1500;

/** Routes that exist only for these tests: values no sane app throws, but telemetry must survive. */
@Controller('hostile')
class HostileController {
  @Get('huge')
  huge() {
    const error = new Error('x'.repeat(1_000_000));
    error.stack = `Error: big\n${'    at frame (file.js:1:1)\n'.repeat(50_000)}`;
    throw error;
  }

  @Get('circular')
  circular() {
    const value: Record<string, unknown> = { name: 'loop' };
    value.self = value;
    throw value;
  }

  @Get('null')
  nothing() {
    throw null;
  }

  /** A route whose parameter looks like a static file's name. */
  @Get('reports/:name')
  report() {
    throw new Error('report generation failed');
  }
}

/** The app's own posthog-node calls after its auth guard ran. */
@Controller('own')
class OwnCapturesController {
  constructor(@Inject(POSTHOG_CLIENT) private readonly posthog: PostHog) {}

  @Get('exception')
  @UseGuards(DemoAuthGuard)
  exception() {
    // posthog-node copies the context for an exception: the copy must still name the request's user.
    this.posthog.captureException(new Error('reported by the app itself'));
    this.posthog.capture({ event: 'own_event' });
    return { ok: true };
  }
}

let sequence = 0;
/** A correlation id no other test uses, so each test reads only its own events. */
const freshId = (label: string) => `${label}-${process.pid}-${++sequence}`;

describe.each(ADAPTERS)('TelemetryModule over %s', (adapter) => {
  let capture: CaptureServer;
  let app: INestApplication;
  let http: ReturnType<typeof request>;

  const eventsOf = (requestId: string) => capture.forRequest(requestId);
  /** Waits for the events of one request, then a little longer so an extra (duplicate) event would show. */
  async function settled(requestId: string, expected: string[]): Promise<CapturedEvent[]> {
    await capture.waitFor(() => expected.every((name) => eventsOf(requestId).some((e) => e.event === name)));
    await new Promise((resolve) => setTimeout(resolve, 150));
    return eventsOf(requestId);
  }
  const named = (events: CapturedEvent[], name: string) => events.filter((e) => e.event === name);

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    app = await createTestApp(
      adapter,
      sendingTo(capture.url, {
        slowThresholdMs: SLOW_THRESHOLD_MS,
        tracebackLimit: TRACEBACK_LIMIT,
        internalDomains: ['staff.example'],
      }),
      { controllers: [HostileController, OwnCapturesController] },
    );
    http = request(app.getHttpServer());
  });

  afterAll(async () => {
    await app.close();
    await capture.stop();
  });

  describe('correlation id', () => {
    it('keeps a valid X-Request-ID and makes it the request_id of every event', async () => {
      const id = freshId('keep');
      const res = await http.get('/items/1').set('X-Request-ID', id);
      expect(res.status).toBe(200);
      expect(res.headers['x-request-id']).toBe(id);
      const events = await settled(id, ['api_request']);
      expect(events.map((e) => e.event)).toEqual(['api_request']);
    });

    it.each([
      ['too long', 'a'.repeat(129)],
      ['spaces', 'hello world'],
      ['a repeated header joined by a comma', 'abc, def'],
      ['unicode', 'réquest-ïd'],
    ])('replaces an invalid X-Request-ID (%s) with a new UUID v4', async (_label, bad) => {
      const res = await http.get('/items/1').set('X-Request-ID', bad);
      expect(res.headers['x-request-id']).toMatch(UUID_V4);
      expect(res.headers['x-request-id']).not.toBe(bad);
      const events = await settled(res.headers['x-request-id'], ['api_request']);
      expect(events).toHaveLength(1);
    });

    it.each([
      ['a success', '/items/1', 200],
      ['a server error', '/errors/application', 500],
      ['a guard rejection', '/admin', 403],
      ['an auth rejection', '/me', 401],
      ['a pipe rejection', '/items/abc', 400],
      ['an unknown route', '/no/such/route', 404],
      ['an excluded health check', '/health', 200],
      ['an opted-out route', '/internal/boom', 500],
    ])('is returned on %s', async (_label, path, status) => {
      const res = await http.get(path);
      expect(res.status).toBe(status);
      expect(res.headers['x-request-id']).toMatch(UUID_V4);
    });
  });

  describe('api_request', () => {
    it('has every contract property, with the route template and no query string', async () => {
      const id = freshId('props');
      await http.get('/items/2?token=secret-value&page=3').set('X-Request-ID', id).expect(200);
      const [event] = await settled(id, ['api_request']);
      expect(event.event).toBe('api_request');
      expect(event.properties).toMatchObject({
        endpoint: '/items/:id',
        method: 'GET',
        status_code: 200,
        success: true,
        request_id: id,
        user_id: 'anonymous',
        environment: 'test',
        $process_person_profile: false,
      });
      expect(typeof event.properties.response_time_ms).toBe('number');
      expect(event.properties.response_time_ms).toBeGreaterThanOrEqual(0);
      expect(event.distinct_id).toMatch(UUID_V4);
      expect(JSON.stringify(event)).not.toContain('secret-value');
      expect(event.uuid).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number.isNaN(Date.parse(event.timestamp!))).toBe(false);
    });

    it('gives each anonymous request its own distinct id, so anonymous traffic is not one person', async () => {
      const a = freshId('anon-a');
      const b = freshId('anon-b');
      await http.get('/items/1').set('X-Request-ID', a);
      await http.get('/items/1').set('X-Request-ID', b);
      const [ea] = await settled(a, ['api_request']);
      const [eb] = await settled(b, ['api_request']);
      expect(ea.distinct_id).not.toBe(eb.distinct_id);
    });

    it('uses the frontend PostHog distinct id and session for anonymous requests, personless', async () => {
      const id = freshId('frontend');
      await http
        .post('/items')
        .set('X-Request-ID', id)
        .set('X-POSTHOG-DISTINCT-ID', BROWSER_ID)
        .set('X-POSTHOG-SESSION-ID', '019a3b6b-634f-72e5-a430-d105b888fb87')
        .send({ name: 'Nachos' })
        .expect(201);
      const [event] = await settled(id, ['api_request']);
      expect(event.distinct_id).toBe(BROWSER_ID);
      expect(event.properties.$session_id).toBe('019a3b6b-634f-72e5-a430-d105b888fb87');
      // A client's claim never creates or updates a person profile.
      expect(event.properties.$process_person_profile).toBe(false);
      expect(event.properties).toMatchObject({ endpoint: '/items', method: 'POST', status_code: 201, success: true });
    });

    it("does not let an anonymous client write as an identified person (X-POSTHOG-DISTINCT-ID: someone's user id)", async () => {
      for (const claim of ['user_12345', 'alice@example.com']) {
        const id = freshId('spoof');
        await http.get('/items/1').set('X-Request-ID', id).set('X-POSTHOG-DISTINCT-ID', claim).expect(200);
        const [event] = await settled(id, ['api_request']);
        expect(event.distinct_id).not.toBe(claim);
        expect(event.distinct_id).toMatch(UUID_V4);
        expect(event.properties.$process_person_profile).toBe(false);
        expect(JSON.stringify(event)).not.toContain(claim);
      }
    });

    it('uses the authenticated user, whatever the distinct id header says', async () => {
      const id = freshId('user');
      await http
        .get('/me')
        .set('X-Request-ID', id)
        .set('Authorization', 'Bearer user_12345')
        .set('X-POSTHOG-DISTINCT-ID', 'someone-else')
        .expect(200);
      const [event] = await settled(id, ['api_request']);
      expect(event.distinct_id).toBe('user_12345');
      expect(event.properties.user_id).toBe('user_12345');
      expect(event.properties.$process_person_profile).toBeUndefined();
    });

    it('records unknown routes under one shared endpoint, with no api_error', async () => {
      const a = freshId('scan-a');
      const b = freshId('scan-b');
      await http.get('/wp-admin/setup.php?step=1').set('X-Request-ID', a).expect(404);
      await http.post('/.env').set('X-Request-ID', b).expect(404);
      const [ea] = await settled(a, ['api_request']);
      const [eb] = await settled(b, ['api_request']);
      expect(ea.properties).toMatchObject({ endpoint: '(unmatched)', status_code: 404, success: false });
      expect(eb.properties.endpoint).toBe('(unmatched)');
      expect(eventsOf(a).map((e) => e.event)).toEqual(['api_request']);
      expect(JSON.stringify(capture.events)).not.toContain('wp-admin');
    });

    it('drops the events of internal users', async () => {
      const id = freshId('staff');
      const control = freshId('staff-control');
      await http.get('/me').set('X-Request-ID', id).set('Authorization', 'Bearer alice@staff.example').expect(200);
      await http.get('/me').set('X-Request-ID', control).set('Authorization', 'Bearer alice@customer.example').expect(200);
      await settled(control, ['api_request']);
      expect(eventsOf(id)).toEqual([]);
    });
  });

  describe('slow_request', () => {
    it('is sent above the threshold, with duration and threshold', async () => {
      const id = freshId('slow');
      await http
        .get(`/slow?ms=${SLOW_THRESHOLD_MS + 150}`)
        .set('X-Request-ID', id)
        .expect(200);
      const events = await settled(id, ['api_request', 'slow_request']);
      const [slow] = named(events, 'slow_request');
      expect(slow.properties).toMatchObject({
        endpoint: '/slow',
        method: 'GET',
        threshold_ms: SLOW_THRESHOLD_MS,
        request_id: id,
        user_id: 'anonymous',
        environment: 'test',
      });
      expect(slow.properties.duration_ms).toBeGreaterThan(SLOW_THRESHOLD_MS);
      expect(named(events, 'slow_request')).toHaveLength(1);
    });

    it('is not sent below the threshold', async () => {
      const id = freshId('fast');
      await http.get('/slow?ms=0').set('X-Request-ID', id).expect(200);
      const events = await settled(id, ['api_request']);
      expect(named(events, 'slow_request')).toEqual([]);
    });
  });

  describe('api_error', () => {
    it.each([
      ['/errors/connection', 'connection_error', 'Error', 500],
      ['/errors/content-filter', 'content_filter', 'Error', 500],
      ['/errors/quota', 'quota_error', 'Error', 500],
      ['/errors/application', 'application_error', 'TypeError', 500],
      ['/errors/not-an-error', 'application_error', 'string', 500],
      ['/errors/interceptor', 'application_error', 'Error', 500],
      ['/admin', 'client_error', 'ForbiddenException', 403],
      ['/me', 'client_error', 'UnauthorizedException', 401],
      ['/items/abc', 'client_error', 'BadRequestException', 400],
      ['/items/99', 'client_error', 'NotFoundException', 404],
    ])('%s: exactly one api_error of type %s', async (path, errorType, exceptionType, status) => {
      const id = freshId('err');
      await http.get(path).set('X-Request-ID', id).expect(status);
      const events = await settled(id, ['api_request', 'api_error']);
      const errors = named(events, 'api_error');
      expect(errors).toHaveLength(1);
      expect(named(events, 'api_request')).toHaveLength(1);
      const [error] = errors;
      expect(error.properties).toMatchObject({
        error_type: errorType,
        exception_type: exceptionType,
        status_code: status,
        method: 'GET',
        request_id: id,
        user_id: 'anonymous',
        environment: 'test',
      });
      expect(error.properties.endpoint).not.toMatch(/\d|abc/);
      expect(typeof error.properties.error_message).toBe('string');
      expect(error.properties.error_message.length).toBeGreaterThan(0);
      expect(typeof error.properties.traceback).toBe('string');
      expect(error.properties.traceback.length).toBeLessThanOrEqual(TRACEBACK_LIMIT);
      expect(error.properties.error_context).toContain(path.startsWith('/items') ? '/items/:id' : path);
      expect(named(events, 'api_request')[0].properties).toMatchObject({ status_code: status, success: false });
      expect(error.distinct_id).toBe(named(events, 'api_request')[0].distinct_id);
    });

    it('bounds an enormous message and stack', async () => {
      const id = freshId('huge');
      await http.get('/hostile/huge').set('X-Request-ID', id).expect(500);
      const [error] = named(await settled(id, ['api_error']), 'api_error');
      expect(error.properties.error_message.length).toBeLessThanOrEqual(2000);
      expect(error.properties.traceback.length).toBeLessThanOrEqual(TRACEBACK_LIMIT);
      expect(error.properties.traceback).toContain('truncated');
      expect(JSON.stringify(error).length).toBeLessThan(10_000);
    });

    it.each([
      ['/hostile/circular', 'Object'],
      ['/hostile/null', 'null'],
    ])('handles a thrown non-Error (%s)', async (path, exceptionType) => {
      const id = freshId('odd');
      await http.get(path).set('X-Request-ID', id).expect(500);
      const [error] = named(await settled(id, ['api_error']), 'api_error');
      expect(error.properties.exception_type).toBe(exceptionType);
      expect(error.properties.error_type).toBe('application_error');
    });
  });

  describe('events sent by the app during a request', () => {
    it('carry the request id, user, session and environment, through the service and the posthog-node client', async () => {
      const id = freshId('chat');
      const res = await http
        .post('/chat')
        .set('X-Request-ID', id)
        .set('X-POSTHOG-SESSION-ID', 'session-42')
        .set('X-POSTHOG-DISTINCT-ID', BROWSER_ID)
        .send({ message: 'hello' })
        .expect(201);
      expect(res.body.request_id).toBe(id);
      const events = await settled(id, ['api_request', 'chat_message_sent', 'chat_reply_generated']);
      const [sent] = named(events, 'chat_message_sent');
      const [reply] = named(events, 'chat_reply_generated');
      const [apiRequest] = named(events, 'api_request');
      for (const event of [sent, reply]) {
        expect(event.distinct_id).toBe(BROWSER_ID);
        expect(event.properties).toMatchObject({ request_id: id, $session_id: 'session-42', environment: 'test', user_id: 'anonymous' });
      }
      expect(sent.properties.message_length).toBe(5);
      expect(reply.properties.$lib).toBe('posthog-node');
      expect(apiRequest.distinct_id).toBe(BROWSER_ID);
    });
  });

  describe("the app's own posthog-node calls", () => {
    it('name the user its guard set, in a capture and in an exception', async () => {
      const id = freshId('own');
      await http.get('/own/exception').set('X-Request-ID', id).set('Authorization', 'Bearer user_own_1').expect(200);
      const events = await settled(id, ['api_request', 'own_event', '$exception']);
      for (const name of ['own_event', '$exception', 'api_request']) {
        const [event] = named(events, name);
        expect(event.distinct_id).toBe('user_own_1');
        expect(event.properties).toMatchObject({ request_id: id, user_id: 'user_own_1', environment: 'test' });
        expect(event.properties.$process_person_profile).toBeUndefined();
      }
    });
  });

  describe('opting out', () => {
    it.each([
      ['a @SkipTelemetry() handler', '/version', 200],
      ['a @SkipTelemetry() controller', '/internal/stats', 200],
      ['an error in a @SkipTelemetry() controller', '/internal/boom', 500],
      ['a health check', '/health', 200],
      ['the favicon', '/favicon.ico', 404],
      ['a static file', '/assets/app.js', 404],
    ])('%s sends no event', async (_label, path, status) => {
      const id = freshId('skip');
      const control = freshId('skip-control');
      await http.get(path).set('X-Request-ID', id).expect(status);
      await http.get('/items/1').set('X-Request-ID', control).expect(200);
      await settled(control, ['api_request']);
      expect(eventsOf(id)).toEqual([]);
    });

    it('records a route of the app whatever its path ends with, and its error', async () => {
      for (const path of ['/hostile/reports/42.js', '/hostile/reports/q3.png', '/hostile/reports/notes.txt']) {
        const id = freshId('static-looking');
        await http.get(path).set('X-Request-ID', id).expect(500);
        const events = await settled(id, ['api_request', 'api_error']);
        expect(named(events, 'api_request')[0].properties).toMatchObject({ endpoint: '/hostile/reports/:name', status_code: 500 });
        expect(named(events, 'api_error')[0].properties.error_message).toContain('report generation failed');
      }
    });
  });

  describe('responses', () => {
    let bare: INestApplication;
    beforeAll(async () => {
      bare = await createBareApp(adapter);
    });
    afterAll(async () => {
      await bare.close();
    });

    it.each([
      ['GET', '/items/1'],
      ['GET', '/items/99'],
      ['GET', '/items/abc'],
      ['GET', '/admin'],
      ['GET', '/me'],
      ['GET', '/errors/application'],
      ['GET', '/errors/quota'],
      ['GET', '/errors/not-an-error'],
      ['GET', '/errors/interceptor'],
      ['GET', '/no/such/route'],
      ['POST', '/items'],
      ['GET', '/version'],
    ])('%s %s is answered exactly as Nest answers without the module', async (method, path) => {
      const send = (target: INestApplication) =>
        method === 'POST' ? request(target.getHttpServer()).post(path).send({}) : request(target.getHttpServer()).get(path);
      const [withModule, without] = await Promise.all([send(app), send(bare)]);
      expect(withModule.status).toBe(without.status);
      expect(withModule.body).toEqual(without.body);
      expect(withModule.headers['content-type']).toBe(without.headers['content-type']);
    });
  });
});

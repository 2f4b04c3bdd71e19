import { Controller, Get, Param, UseGuards, type CanActivate, type ExecutionContext, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import * as Sentry from '@sentry/node';
import { SentryOutlet } from '../libs/telemetry/src/outlets/sentry.outlet.js';
import { CaptureServer } from './support/capture-server.js';
import { SentryServer, sentryFor } from './support/sentry-server.js';
import { ADAPTERS, createTestApp, sendingTo } from './support/test-app.js';

/**
 * Sentry alongside PostHog, for real: `@sentry/node` (initialised by the module
 * from the `sentry.dsn` option) sends envelopes to a server on 127.0.0.1.
 * Sentry's client is process-wide: the first app (Express) initialises it, the
 * later one (Fastify) finds it already set up and uses it, as it would an app's own `Sentry.init()`.
 */

/** Secret shapes, each with the part that must never leave the process. */
const SECRET_TABLE: [string, string][] = [
  ['bearer', 'Authorization: Bearer tokAbc123456789xyzTOKEN'],
  ['jwt', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEyMyJ9.c2lnbmF0dXJlMTIzNDU2'],
  ['posthog project key', 'phc_projKEY1234567890abcdef'],
  ['posthog personal key', 'phx_persKEY1234567890abcdef'],
  ['openai key', 'sk-proj-OPENAIkey1234567890abcd'],
  ['anthropic key', 'sk-ant-api03-ANTHROPICkey123456789'],
  ['aws key id', 'AKIAIOSFODNN7EXAMPLE'],
  ['url credentials', 'redis://default:redisPASSword99@cache.internal:6379'],
  ['query string', 'https://api.example.com/v1/users?access=queryTOKEN5566'],
  ['password pair', 'password=pairPASSword77'],
  ['api key pair', '"api_key": "pairAPIkey8899"'],
];
const SECRET_VALUES = [
  'tokAbc123456789xyzTOKEN',
  'c2lnbmF0dXJlMTIzNDU2',
  'projKEY1234567890abcdef',
  'persKEY1234567890abcdef',
  'OPENAIkey1234567890abcd',
  'ANTHROPICkey123456789',
  'AKIAIOSFODNN7EXAMPLE',
  'redisPASSword99',
  'queryTOKEN5566',
  'pairPASSword77',
  'pairAPIkey8899',
];

/** Sets `request.user` from `Authorization: Bearer <id>` when present, never rejects. */
class OptionalUser implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest();
    const match = /^Bearer (\w+)$/.exec(request.headers.authorization ?? '');
    if (match) request.user = { id: match[1] };
    return true;
  }
}

@Controller('sentry')
@UseGuards(OptionalUser)
class SentryController {
  /** Distinct messages: Sentry's Dedupe drops an event identical to the one before it. */
  @Get('numbered/:n')
  numbered(@Param('n') n: string) {
    throw new Error(`failure number ${n}`);
  }

  /** Every secret shape at once, in the message (a stack trace carries it too). */
  @Get('all-secrets')
  allSecrets() {
    throw new Error(SECRET_TABLE.map(([, text]) => text).join(' | '));
  }

  @Get('secret')
  secret() {
    throw new Error('db said password=hunter2secret for postgres://admin:s3cr3tpass@db.internal/app');
  }
}

// One Sentry server for the file: the Sentry client, made by the first app, keeps its DSN for the process.
let sentry: SentryServer;
beforeAll(async () => {
  sentry = await new SentryServer().start();
});
afterAll(async () => {
  await sentry.stop();
});

describe.each(ADAPTERS)('Sentry over %s', (adapter) => {
  let capture: CaptureServer;
  let app: INestApplication;
  let http: ReturnType<typeof request>;
  let sequence = 0;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    const options = sentryFor(sentry);
    // An app's own filter: Sentry sends nothing for these errors.
    const beforeSend = (event: { exception?: { values?: { value?: string }[] } }) =>
      event.exception?.values?.[0]?.value?.includes('dropped by beforeSend') ? null : event;
    app = await createTestApp(adapter, sendingTo(capture.url, { sentry: { ...options, init: { ...options.init, beforeSend } } }), {
      controllers: [SentryController],
    });
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    await capture.stop();
  });

  const sentryEventsFor = (requestId: string) => sentry.eventsFor(requestId);

  it('sends a server error once, tagged, with its id on the api_error and a matching $exception', async () => {
    const id = `sentry-${adapter}-${++sequence}`;
    await http.get('/me').set('X-Request-ID', `${id}-warmup`).set('Authorization', 'Bearer user_42');
    await http.get('/errors/application').set('X-Request-ID', id).expect(500);
    await capture.waitFor(
      () => capture.forRequest(id).some((e) => e.event === 'api_error') && capture.forRequest(id).some((e) => e.event === '$exception'),
    );
    await sentry.waitForRequests(id);
    await new Promise((done) => setTimeout(done, 200));
    const [event, ...more] = sentryEventsFor(id);
    expect(more).toEqual([]);
    expect(event.tags).toMatchObject({ request_id: id, endpoint: '/errors/application', error_type: 'application_error' });
    expect(event.exception?.values?.[0]?.type).toBe('TypeError');
    const apiError = capture.forRequest(id).find((e) => e.event === 'api_error')!;
    expect(apiError.properties.sentry_event_id).toBe(event.event_id);
    expect(capture.forRequest(id).filter((e) => e.event === '$exception')).toHaveLength(1);
  });

  it('tags the user, and keeps tags of concurrent requests apart', async () => {
    const ids = Array.from({ length: 12 }, () => `sentry-${adapter}-${++sequence}`);
    await Promise.all(
      ids.map((id, n) =>
        http
          .get(`/sentry/numbered/${n}`)
          .set('X-Request-ID', id)
          .set(n % 2 ? { Authorization: `Bearer user_${n}` } : {})
          .then(() => undefined),
      ),
    );
    await sentry.waitForRequests(...ids);
    for (const [n, id] of ids.entries()) {
      const events = sentryEventsFor(id);
      expect(events).toHaveLength(1);
      expect(events[0].user?.id).toBe(n % 2 ? `user_${n}` : undefined);
    }
  });

  it('lets no secret of the table reach PostHog or Sentry, nor the request headers and query', async () => {
    const id = `sentry-${adapter}-${++sequence}`;
    await http
      .get('/sentry/all-secrets?session=querySESSION4242')
      .set('X-Request-ID', id)
      .set('Authorization', 'Basic aGVhZGVyQkFTSUMzMTMzNzpzZWNyZXQ=') // not a Bearer: the test's guard would take it as the user id
      .set('Cookie', 'sid=cookieSID98765')
      .expect(500);
    await capture.waitFor(() => ['api_error', '$exception'].every((name) => capture.forRequest(id).some((e) => e.event === name)));
    await sentry.waitForRequests(id);
    expect(sentryEventsFor(id)).toHaveLength(1);
    const wire = JSON.stringify(capture.events) + sentry.raw.join('\n');
    for (const value of [...SECRET_VALUES, 'querySESSION4242', 'aGVhZGVyQkFTSUMzMTMzNzpzZWNyZXQ', 'cookieSID98765'])
      expect(wire).not.toContain(value);
  });

  it("learns Sentry's verdict: the id of an event it sent, nothing for one its beforeSend or Dedupe dropped", async () => {
    const outlet = app.get(SentryOutlet);
    const report = (id: string) => ({
      tags: { request_id: id, endpoint: '/verdict', error_type: 'application_error' },
      userId: 'anonymous',
      handled: true,
      mechanism: 'test',
    });
    const kept = `verdict-${adapter}-kept`;
    const dropped = `verdict-${adapter}-dropped`;
    const [keptId, droppedId] = await Promise.all([
      outlet.capture(new Error(`kept (${adapter})`), report(kept)),
      outlet.capture(new Error('dropped by beforeSend'), report(dropped)),
    ]);
    // The same error again, from the same place, right after: Sentry's Dedupe drops it, and says so before `captureException` returns.
    const [first, second] = ['first', 'second'].map((n) =>
      outlet.send(new Error(`repeated (${adapter})`), report(`verdict-${adapter}-${n}`)),
    );
    await sentry.waitForRequests(kept, `verdict-${adapter}-first`);
    await Sentry.flush(2000);
    expect(keptId).toBe(sentryEventsFor(kept)[0]?.event_id);
    expect(droppedId).toBeUndefined();
    expect(sentryEventsFor(dropped)).toEqual([]);
    expect(first).toBe(sentryEventsFor(`verdict-${adapter}-first`)[0]?.event_id);
    expect(second).toBeUndefined();
    expect(sentryEventsFor(`verdict-${adapter}-second`)).toEqual([]);
  });

  it('sends no 4xx, nothing for a skipped route, and no secret', async () => {
    const notFound = `sentry-${adapter}-${++sequence}`;
    const skipped = `sentry-${adapter}-${++sequence}`;
    const secret = `sentry-${adapter}-${++sequence}`;
    await http.get('/items/99').set('X-Request-ID', notFound).expect(404);
    await http.get('/internal/boom').set('X-Request-ID', skipped).expect(500);
    await http.get('/sentry/secret?token=querysecret123').set('X-Request-ID', secret).set('Cookie', 'session=cookiesecret456').expect(500);
    await sentry.waitForRequests(secret);
    await new Promise((done) => setTimeout(done, 300));
    expect(sentryEventsFor(notFound)).toEqual([]);
    expect(sentryEventsFor(skipped)).toEqual([]);
    expect(sentryEventsFor(secret)).toHaveLength(1);
    const wire = sentry.raw.join('\n');
    for (const value of ['hunter2secret', 's3cr3tpass', 'querysecret123', 'cookiesecret456', 'ip_address'])
      expect(wire).not.toContain(value);
  });
});

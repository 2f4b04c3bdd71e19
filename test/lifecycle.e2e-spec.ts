import { Injectable, Module } from '@nestjs/common';
import { spawn } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { getRequestContext, TelemetryService, TelemetryModule, type TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import request from 'supertest';
import { freePort, RecordingLogger } from './support/recording-logger.js';
import { CaptureServer } from './support/capture-server.js';
import { SentryServer } from './support/sentry-server.js';
import { ADAPTERS, createTestApp, sendingTo } from './support/test-app.js';

/** Runs an ES module script in a Node process of its own (it imports the built package); its exit code. */
function exitCodeOf(script: string, env: Record<string, string>): Promise<number | null> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, stdio: 'ignore' });
  return new Promise((done) => child.once('exit', (exitCode) => done(exitCode)));
}

describe.each(ADAPTERS)('lifecycle over %s', (adapter) => {
  let capture: CaptureServer;

  beforeEach(async () => {
    capture = await new CaptureServer().start();
  });
  afterEach(async () => {
    await capture.stop();
  });

  it('delivers every queued event on app.close()', async () => {
    // Nothing leaves before close: batches of 1000 and a one-minute interval.
    const app = await createTestApp(adapter, sendingTo(capture.url, { posthogOptions: { flushAt: 1000, flushInterval: 60_000 } }));
    const http = request(app.getHttpServer());
    for (let i = 0; i < 40; i++)
      await http
        .get(`/items/${(i % 2) + 1}`)
        .set('X-Request-ID', `close-${i}`)
        .expect(200);
    await new Promise((done) => setTimeout(done, 100));
    expect(capture.events).toHaveLength(0);
    await app.close();
    const delivered = capture
      .eventsNamed('api_request')
      .map((e) => e.properties.request_id)
      .sort();
    expect(delivered).toEqual(Array.from({ length: 40 }, (_, i) => `close-${i}`).sort());
  });

  it('answers requests normally while PostHog hangs, and close() returns within shutdownTimeoutMs', async () => {
    capture.behaviour = { kind: 'hang' };
    const shutdownTimeoutMs = 400;
    // posthog-node's own client (it sends the $exception) gives up quickly too, rather than logging after the test.
    const app = await createTestApp(
      adapter,
      sendingTo(capture.url, { shutdownTimeoutMs, posthogOptions: { requestTimeout: 200, fetchRetryCount: 0 } }),
    );
    const http = request(app.getHttpServer());
    for (let i = 0; i < 20; i++) {
      const res = await http.get('/items/1');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ id: 1, name: 'Popcorn' });
    }
    await http.get('/errors/application').expect(500);
    // The sender did try (its first batch leaves once its sending thread is up).
    for (const deadline = Date.now() + 5000; capture.requests === 0 && Date.now() < deadline;)
      await new Promise((done) => setTimeout(done, 10));
    expect(capture.requests).toBeGreaterThan(0);
    const started = Date.now();
    await app.close();
    // A bound, not a speed goal: close must not wait for PostHog beyond the timeout (plus slack for the app's own close).
    expect(Date.now() - started).toBeLessThan(shutdownTimeoutMs + 3000);
  });

  it('answers requests normally when nothing listens at the PostHog host', async () => {
    const app = await createTestApp(
      adapter,
      sendingTo(`http://127.0.0.1:${await freePort()}`, {
        shutdownTimeoutMs: 300,
        posthogOptions: { requestTimeout: 200, fetchRetryCount: 0 },
      }),
    );
    const http = request(app.getHttpServer());
    await http.get('/items/2').expect(200, { id: 2, name: 'Soda' });
    await http.get('/errors/quota').expect(500);
    await app.close();
  });

  it('runs in local mode with no API key: one log line per event, nothing on the network', async () => {
    const logger = new RecordingLogger();
    const app = await createTestApp(adapter, { host: capture.url, apiKey: '' }, { logger });
    const http = request(app.getHttpServer());
    await http.get('/items/1').set('X-Request-ID', 'local-1').expect(200);
    await http.get('/errors/connection').set('X-Request-ID', 'local-2').expect(500);
    await http.post('/chat').set('X-Request-ID', 'local-3').send({ message: 'hi' }).expect(201);
    await app.close();
    const eventLines = logger.messagesFrom('Telemetry').filter((l) => /request_id/.test(l));
    expect(eventLines.some((l) => l.includes('api_request') && l.includes('"request_id":"local-1"') && l.includes('"/items/:id"'))).toBe(
      true,
    );
    expect(eventLines.some((l) => l.includes('api_error') && l.includes('"error_type":"connection_error"'))).toBe(true);
    expect(eventLines.some((l) => l.includes('chat_message_sent') && l.includes('"request_id":"local-3"'))).toBe(true);
    for (const line of eventLines) expect(line).not.toContain('\n');
    expect(logger.count(/local mode/)).toBe(1);
    expect(capture.requests).toBe(0);
  });

  it('sends nothing when disabled, and still returns request ids', async () => {
    const app = await createTestApp(adapter, sendingTo(capture.url, { enabled: false }));
    const http = request(app.getHttpServer());
    const res = await http.get('/items/1').set('X-Request-ID', 'off-1').expect(200);
    expect(res.headers['x-request-id']).toBe('off-1');
    await http.get('/errors/application').expect(500);
    await http.post('/chat').send({ message: 'x' }).expect(201);
    await app.close();
    expect(capture.requests).toBe(0);
  });

  it('reads and returns the correlation id in a custom requestIdHeader', async () => {
    const app = await createTestApp(adapter, sendingTo(capture.url, { requestIdHeader: 'X-Correlation-ID' }));
    const res = await request(app.getHttpServer()).get('/items/1').set('X-Correlation-ID', 'corr-7').set('X-Request-ID', 'ignored-1');
    await app.close();
    expect(res.headers['x-correlation-id']).toBe('corr-7');
    expect(res.headers['x-request-id']).toBeUndefined();
    expect(capture.forRequest('corr-7').map((e) => e.event)).toEqual(['api_request']);
  });

  it('records the full route template under a global prefix', async () => {
    const app = await createTestApp(adapter, sendingTo(capture.url), { globalPrefix: 'api' });
    await request(app.getHttpServer()).get('/api/items/2').set('X-Request-ID', 'prefixed').expect(200);
    await app.close();
    expect(capture.forRequest('prefixed')[0].properties.endpoint).toBe('/api/items/:id');
  });

  it('records a client that went away before the response as 499, with no api_error', async () => {
    const app = await createTestApp(adapter, sendingTo(capture.url));
    const { port } = app.getHttpServer().address() as { port: number };
    const controller = new AbortController();
    const gone = fetch(`http://127.0.0.1:${port}/slow?ms=400`, { headers: { 'X-Request-ID': 'went-away' }, signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await expect(gone).rejects.toThrow();
    await capture.waitFor(() => capture.forRequest('went-away').length > 0);
    await app.close();
    const events = capture.forRequest('went-away');
    expect(events.map((e) => e.event)).toEqual(['api_request']);
    expect(events[0].properties).toMatchObject({ status_code: 499, success: false, endpoint: '/slow' });
  });

  it('tags internal users instead of dropping them when asked', async () => {
    const app = await createTestApp(adapter, sendingTo(capture.url, { internalDomains: ['staff.example'], internalUsers: 'tag' }));
    await request(app.getHttpServer())
      .get('/me')
      .set('X-Request-ID', 'staff-tag')
      .set('Authorization', 'Bearer bob@staff.example')
      .expect(200);
    await app.close();
    const [event] = capture.forRequest('staff-tag');
    expect(event.properties).toMatchObject({ is_internal_user: true, user_id: 'bob@staff.example' });
  });
});

describe('configuration', () => {
  let capture: CaptureServer;
  beforeEach(async () => {
    capture = await new CaptureServer().start();
  });
  afterEach(async () => {
    await capture.stop();
  });

  it('reads POSTHOG_API_KEY, POSTHOG_HOST, SLOW_THRESHOLD and POSTHOG_INTERNAL_DOMAINS when given no options', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      POSTHOG_API_KEY: 'phc_from_env',
      POSTHOG_HOST: capture.url,
      SLOW_THRESHOLD: '0.05',
      POSTHOG_INTERNAL_DOMAINS: 'staff.example',
      ENVIRONMENT: 'staging',
    });
    try {
      const app = await createTestApp('express', {}, { telemetryModule: TelemetryModule.forRoot() });
      const http = request(app.getHttpServer());
      await http.get('/slow?ms=120').set('X-Request-ID', 'env-slow').expect(200);
      await http.get('/me').set('X-Request-ID', 'env-staff').set('Authorization', 'Bearer eve@staff.example').expect(200);
      await app.close();
    } finally {
      process.env = saved;
    }
    const body = JSON.parse(gunzipSync(capture.bodies[0].body).toString());
    expect(body.api_key).toBe('phc_from_env');
    const [slow] = capture.eventsNamed('slow_request', (e) => e.properties.request_id === 'env-slow');
    expect(slow.properties).toMatchObject({ threshold_ms: 50, environment: 'staging' });
    expect(capture.forRequest('env-staff')).toEqual([]);
  });

  it('builds the options with forRootAsync (useFactory with inject, and useClass)', async () => {
    @Injectable()
    class Settings {
      readonly host = capture.url;
    }
    @Module({ providers: [Settings], exports: [Settings] })
    class SettingsModule {}

    @Injectable()
    class TelemetryConfig {
      create(): TelemetryModuleOptions {
        return sendingTo(capture.url, { environment: 'from-class' });
      }
    }

    const byFactory = await createTestApp(
      'express',
      {},
      {
        telemetryModule: TelemetryModule.forRootAsync({
          imports: [SettingsModule],
          inject: [Settings],
          useFactory: (settings: Settings) => sendingTo(settings.host, { environment: 'from-factory' }),
        }),
      },
    );
    await request(byFactory.getHttpServer()).get('/items/1').set('X-Request-ID', 'async-factory').expect(200);
    await byFactory.close();

    const byClass = await createTestApp('express', {}, { telemetryModule: TelemetryModule.forRootAsync({ useClass: TelemetryConfig }) });
    await request(byClass.getHttpServer()).get('/items/1').set('X-Request-ID', 'async-class').expect(200);
    await byClass.close();

    expect(capture.forRequest('async-factory')[0].properties.environment).toBe('from-factory');
    expect(capture.forRequest('async-class')[0].properties.environment).toBe('from-class');
  });

  it('captureError() outside requests: an api_error and its $exception, for a scheduled job', async () => {
    const app = await createTestApp('express', sendingTo(capture.url));
    app.get(TelemetryService).captureError(new Error('nightly import failed'), { endpoint: 'cron:nightly-import' });
    await app.close();
    const [apiError] = capture.eventsNamed('api_error');
    const [exception] = capture.eventsNamed('$exception');
    expect(apiError.properties).toMatchObject({
      endpoint: 'cron:nightly-import',
      status_code: 500,
      error_message: 'nightly import failed',
    });
    expect(apiError.properties.$exception_uuid).toBe(exception.uuid);
  });

  it('captureProcessErrors: an unhandled rejection reaches Error Tracking and the process still crashes', async () => {
    // A separate process: the app context, then a rejection nobody handles. It runs the built package.
    const script = [
      "import 'reflect-metadata';",
      "import { NestFactory } from '@nestjs/core';",
      "import { TelemetryModule } from 'nestjs-posthog-telemetry';",
      "await NestFactory.createApplicationContext(TelemetryModule.forRoot({ apiKey: 'phc_x', host: process.env.CAPTURE_URL, captureProcessErrors: true }), { logger: false });",
      "setTimeout(() => Promise.reject(new Error('background failure')), 20);",
    ].join('\n');
    const code = await exitCodeOf(script, { CAPTURE_URL: capture.url });
    expect(code).toBe(1);
    await capture.waitFor((events) => events.some((e) => e.event === '$exception'));
    const [exception] = capture.eventsNamed('$exception');
    expect(exception.properties.$exception_list[0].value).toBe('background failure');
  });

  it('captureProcessErrors with the Sentry the module initialised: the process still crashes, and both hear of it', async () => {
    // posthog-node's and Sentry's crash handlers each took the other for the app's own, and the process lived on.
    const sentry = await new SentryServer().start();
    try {
      const script = [
        "import 'reflect-metadata';",
        "import { NestFactory } from '@nestjs/core';",
        "import { TelemetryModule } from 'nestjs-posthog-telemetry';",
        'await NestFactory.createApplicationContext(TelemetryModule.forRoot({ apiKey: "phc_x", host: process.env.CAPTURE_URL, captureProcessErrors: true, sentry: { dsn: process.env.SENTRY_DSN } }), { logger: false });',
        "setTimeout(() => Promise.reject(new Error('crash with both')), 20);",
        // Were the process to live on, it would say so here and exit 0.
        'setTimeout(() => process.exit(0), 15000);',
      ].join('\n');
      const code = await exitCodeOf(script, { CAPTURE_URL: capture.url, SENTRY_DSN: sentry.dsn });
      expect(code).toBe(1);
      await capture.waitFor((events) =>
        events.some((e) => e.event === '$exception' && e.properties.$exception_list?.[0]?.value === 'crash with both'),
      );
      expect(sentry.events.some((e) => e.exception?.values?.[0]?.value === 'crash with both')).toBe(true);
    } finally {
      await sentry.stop();
    }
  }, 40_000);

  it('a process that sent events and never closed its app ends on its own: the sending thread holds nothing between batches', async () => {
    const script = [
      "import 'reflect-metadata';",
      "import { NestFactory } from '@nestjs/core';",
      "import { TelemetryModule, TelemetryService } from 'nestjs-posthog-telemetry';",
      "const app = await NestFactory.createApplicationContext(TelemetryModule.forRoot({ apiKey: 'phc_x', host: process.env.CAPTURE_URL, posthogOptions: { flushInterval: 50 } }), { logger: false });",
      "app.get(TelemetryService).capture('sent_before_idle');",
      // Long enough for the batch to leave (flushed after 50 ms); then nothing of the app's holds the event loop.
      'await new Promise((resolve) => setTimeout(resolve, 1000));',
      // Were anything of the module's to hold it, this would end the process with 3 instead.
      'setTimeout(() => process.exit(3), 15000).unref();',
    ].join('\n');
    const code = await exitCodeOf(script, { CAPTURE_URL: capture.url });
    expect(code).toBe(0);
    expect(capture.eventsNamed('sent_before_idle')).toHaveLength(1);
  }, 30_000);

  it('captures outside requests without a request context', async () => {
    const app = await createTestApp('express', sendingTo(capture.url));
    expect(getRequestContext()).toBeUndefined();
    app.get(TelemetryService).capture('nightly_job_done', { items: 3 });
    await app.close();
    const [event] = capture.eventsNamed('nightly_job_done');
    expect(event.properties).toMatchObject({ items: 3, environment: 'test', user_id: 'anonymous' });
    expect(event.properties.request_id).toBeUndefined();
  });
});

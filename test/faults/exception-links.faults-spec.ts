import { Controller, Get, Param, type INestApplication } from '@nestjs/common';
import { Agent, get as httpGet } from 'node:http';
import { CaptureServer, type CapturedEvent } from '../support/capture-server.js';
import { createTestApp, sendingTo } from '../support/test-app.js';
import { FaultReport } from './fault-report.js';

/**
 * An `api_error`'s `$exception_uuid` names an `$exception` that PostHog
 * receives: never one that was not built (an error whose getters throw), nor
 * one lost to an outage. `$exception`s get the module's own outage guarantees:
 * queued, retried until PostHog is back, delivered after recovery.
 */

const report = new FaultReport('exception-links');

const agent = new Agent({ keepAlive: true, maxSockets: 8 });
afterAll(() => agent.destroy());

function get(app: INestApplication, path: string, requestId: string): Promise<number> {
  const { port } = app.getHttpServer().address() as { port: number };
  return new Promise((resolve, reject) => {
    const req = httpGet(`http://127.0.0.1:${port}${path}`, { agent, headers: { 'X-Request-ID': requestId } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** An Error whose `name`, `message` or `stack` getter throws, or returns what is not a string. */
function hostileError(kind: string): Error {
  const error = new Error('a hostile error');
  const define = (key: 'name' | 'message' | 'stack', get: () => unknown) => Object.defineProperty(error, key, { get, configurable: true });
  const boom = (key: string) => () => {
    throw new Error(`${key} getter throws`);
  };
  if (kind === 'message-throws') define('message', boom('message'));
  if (kind === 'name-throws') define('name', boom('name'));
  if (kind === 'stack-throws') define('stack', boom('stack'));
  if (kind === 'all-throw') for (const key of ['name', 'message', 'stack'] as const) define(key, boom(key));
  if (kind === 'non-strings') {
    define('name', () => 42);
    define('message', () => ({ not: 'a string' }));
    define('stack', () => ['not', 'a', 'string']);
  }
  return error;
}

const KINDS = ['message-throws', 'name-throws', 'stack-throws', 'all-throw', 'non-strings'];

@Controller('hostile-errors')
class HostileErrorsController {
  @Get(':kind')
  fail(@Param('kind') kind: string) {
    throw hostileError(kind);
  }
}

const named = (events: CapturedEvent[], name: string) => events.filter((e) => e.event === name);

/** Links of the api_errors that name no `$exception` received. */
function dangling(capture: CaptureServer, apiErrors: CapturedEvent[]): string[] {
  const received = new Set(capture.eventsNamed('$exception').map((e) => e.uuid));
  return apiErrors
    .map((e) => e.properties.$exception_uuid)
    .filter((uuid): uuid is string => typeof uuid === 'string' && !received.has(uuid));
}

describe('an error whose getters throw or return non-strings', () => {
  it('links its api_error only to an $exception that was queued and delivered', async () => {
    const capture = await new CaptureServer().start();
    const app = await createTestApp('express', sendingTo(capture.url), { controllers: [HostileErrorsController] });
    const kinds = KINDS;
    let wrong = 0;
    try {
      for (const kind of kinds) if ((await get(app, `/hostile-errors/${kind}`, `hostile-${kind}`)) !== 500) wrong++;
    } finally {
      // Delivers everything queued, and every api_error still waiting for its $exception.
      await app.close();
      await capture.stop();
    }
    const apiErrors = kinds.map((kind) => named(capture.forRequest(`hostile-${kind}`), 'api_error')[0]);
    const links = dangling(capture, apiErrors.filter(Boolean));
    report.add({
      fault: 'errors whose name/message/stack getters throw or return non-strings',
      requestsSent: kinds.length,
      answeredWrongly: wrong,
      eventsExpected: kinds.length,
      eventsDelivered: apiErrors.filter(Boolean).length,
      note: `${links.length} $exception_uuid link(s) to an $exception never sent`,
    });
    expect(wrong).toBe(0);
    const exceptions = kinds.map((kind) => named(capture.forRequest(`hostile-${kind}`), '$exception'));
    for (const [i] of kinds.entries()) {
      expect(apiErrors[i]).toBeDefined();
      expect(exceptions[i].length).toBeLessThanOrEqual(1);
      // Linked exactly when an $exception was sent for it.
      expect(apiErrors[i].properties.$exception_uuid).toBe(exceptions[i][0]?.uuid);
    }
    expect(links).toEqual([]);
    // posthog-node reads `message` first and gives up when it throws: no $exception, so no link.
    expect(exceptions[kinds.indexOf('message-throws')]).toEqual([]);
    // It builds one without a readable stack, and from non-strings: sent, and linked.
    expect(exceptions[kinds.indexOf('stack-throws')]).toHaveLength(1);
    expect(exceptions[kinds.indexOf('non-strings')]).toHaveLength(1);
  });
});

describe('PostHog answering 503 past posthog-node retries', () => {
  it('keeps every $exception queued and delivers it after recovery: no api_error links to a lost one', async () => {
    const capture = await new CaptureServer().start();
    const app = await createTestApp(
      'express',
      sendingTo(capture.url, { posthogOptions: { flushAt: 5, flushInterval: 50, fetchRetryDelay: 100, requestTimeout: 1000 } }),
    );
    const total = 40;
    const ids = Array.from({ length: total }, (_, n) => `outage-error-${n}`);
    let wrong = 0;
    try {
      capture.behaviour = { kind: 'status', status: 503 };
      for (const id of ids) if ((await get(app, '/errors/connection', id)) !== 500) wrong++;
      // The outage goes on for 3 s after the last error, far past posthog-node's 3 retries 100 ms apart.
      await new Promise((done) => setTimeout(done, 3000));
      capture.behaviour = { kind: 'ok' };
      const apiErrorsIn = () => ids.map((id) => named(capture.forRequest(id), 'api_error')[0]).filter(Boolean);
      await capture.waitFor(() => apiErrorsIn().length === total, 60_000).catch(() => undefined);
      // Every link names an $exception that is, or will be, delivered: wait for them, then count what is missing.
      await capture.waitFor(() => dangling(capture, apiErrorsIn()).length === 0, 30_000).catch(() => undefined);
      const apiErrors = apiErrorsIn();
      const links = apiErrors.filter((e) => typeof e.properties.$exception_uuid === 'string').length;
      const missing = dangling(capture, apiErrors);
      const exceptions = ids.filter((id) => named(capture.forRequest(id), '$exception').length === 1).length;
      report.add({
        fault: `PostHog answers 503 during ${total} failing requests, past posthog-node's retries, then recovers`,
        requestsSent: total,
        answeredWrongly: wrong,
        eventsExpected: 2 * total,
        eventsDelivered: apiErrors.length + exceptions,
        note: `${links} api_error(s) linked, ${missing.length} link(s) to an $exception never delivered; ${exceptions} of ${total} $exceptions delivered after recovery`,
      });
      expect(wrong).toBe(0);
      expect(apiErrors).toHaveLength(total);
      expect(missing).toEqual([]);
      // Nothing was dropped by a bound: every $exception was kept, delivered and linked.
      expect(exceptions).toBe(total);
      expect(links).toBe(total);
      // The Error Tracking format posthog-node builds: parsed frames, its library, the correlation.
      const [exception] = named(capture.forRequest(ids[0]), '$exception');
      expect(exception.properties).toMatchObject({
        $lib: 'posthog-node',
        request_id: ids[0],
        endpoint: '/errors/connection',
        status_code: 500,
      });
      expect(exception.properties.$exception_list[0].stacktrace.frames.length).toBeGreaterThan(0);
    } finally {
      await app.close();
      await capture.stop();
    }
  });
});

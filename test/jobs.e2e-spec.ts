import 'reflect-metadata';
import { Controller, Get, Inject, Injectable, Optional, Param, type INestApplication } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { Cron, Interval, ScheduleExplorer, ScheduleModule, Timeout } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import * as Sentry from '@sentry/node';
import { POSTHOG_CLIENT, TelemetryService, TelemetryModule, type TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import type { PostHog } from 'posthog-node';
import request from 'supertest';
import { JobErrorsExplorer } from '../libs/telemetry/src/jobs/job-errors.explorer.js';
import { CaptureServer, type CapturedEvent } from './support/capture-server.js';
import { RecordingLogger } from './support/recording-logger.js';
import { SentryServer, sentryFor, type SentryEnvelopeEvent } from './support/sentry-server.js';
import { sendingTo } from './support/test-app.js';

/**
 * Scheduled jobs (`@nestjs/schedule`) and event handlers (`@nestjs/event-emitter`)
 * in real Nest apps, with the real scheduler and emitter: their failures reach the
 * loopback PostHog and Sentry servers, and the jobs behave as without the module.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** Each app's jobs put its label in their messages: apps of this file share the servers. */
const LABEL = 'jobs-label';

@Injectable()
class Jobs {
  cronRuns = 0;
  unnamedCronRuns = 0;
  intervalRuns = 0;
  timeoutRuns = 0;

  constructor(
    @Inject(LABEL) readonly label: string,
    private readonly telemetry: TelemetryService,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
  ) {}

  /** Fails on its first run only: the scheduler must keep running it. */
  @Cron('* * * * * *', { name: 'nightly-import' })
  importEverything(): void {
    const run = ++this.cronRuns;
    Sentry.setTag('job_run', `cron-${run}`);
    Sentry.addBreadcrumb({ message: `${this.label} cron run ${run}` });
    if (run === 1) throw new Error(`${this.label} cron failure ${run}`);
  }

  @Cron('* * * * * *')
  rotateKeys(): void {
    if (++this.unnamedCronRuns === 1) throw new TypeError(`${this.label} unnamed cron failure`);
  }

  /** Rejects on its first three runs, each with its own tag, breadcrumb and events. */
  @Interval(50)
  async refresh(): Promise<void> {
    const run = ++this.intervalRuns;
    Sentry.setTag('job_run', `interval-${run}`);
    Sentry.addBreadcrumb({ message: `${this.label} interval run ${run}` });
    if (run > 3) return;
    // The app's own events inside a run share its correlation id.
    this.telemetry.capture('refresh_started', { label: this.label, run });
    await new Promise((done) => setTimeout(done, 5));
    this.posthog.capture({ event: 'refresh_raw', properties: { label: this.label, run } });
    throw new Error(`${this.label} interval failure ${run}`);
  }

  /** Never due while the tests run: only called by the app itself, inside a request. */
  @Interval('reindex', 3_600_000)
  reindex(): void {
    throw new Error(`${this.label} reindex failure`);
  }

  @Timeout('warm-up', 10)
  warmUp(): void {
    this.timeoutRuns++;
    throw new Error(`${this.label} timeout failure`);
  }
}

interface Order {
  id: string;
}

/** No Sentry tags here: the app without the module runs these too, outside any isolation scope. */
@Injectable()
class OrderListeners {
  @OnEvent('order.created')
  sendReceipt(order: Order): void {
    Sentry.addBreadcrumb({ message: `receipt attempt ${order.id}` });
    throw new Error(`receipt failed for ${order.id}`);
  }

  @OnEvent('order.created')
  async reserveStock(order: Order): Promise<void> {
    await new Promise((done) => setTimeout(done, 5));
    throw new RangeError(`stock failed for ${order.id}`);
  }

  @OnEvent('order.created')
  confirm(order: Order): string {
    return `confirmed ${order.id}`;
  }

  @OnEvent('order.paid', { suppressErrors: false })
  async charge(order: Order): Promise<string> {
    await new Promise((done) => setTimeout(done, 5));
    if (order.id.endsWith('declined')) throw new Error(`charge failed for ${order.id}`);
    return `charged ${order.id}`;
  }
}

@Controller('orders')
class OrdersController {
  constructor(
    private readonly events: EventEmitter2,
    @Optional() private readonly jobs?: Jobs,
  ) {}

  @Get('reindex/now')
  reindexNow() {
    return this.jobs!.reindex();
  }

  @Get(':id')
  place(@Param('id') id: string) {
    this.events.emit('order.created', { id });
    return { placed: id };
  }

  @Get(':id/then-fail')
  placeThenFail(@Param('id') id: string) {
    this.events.emit('order.created', { id });
    throw new Error(`request failed after placing ${id}`);
  }
}

interface JobsApp {
  app: INestApplication;
  jobs?: Jobs;
  emitter: EventEmitter2;
  logger: RecordingLogger;
  /** Which explorer's `onModuleInit` Nest called first. */
  hookOrder: string[];
}

/**
 * An app with the scheduler, the emitter and the jobs; `telemetry` adds the
 * module, imported before (`first`) or after the two packages' modules.
 */
async function createJobsApp(
  label: string,
  { telemetry, first = false, schedule = true }: { telemetry?: TelemetryModuleOptions; first?: boolean; schedule?: boolean },
): Promise<JobsApp> {
  const packages = [...(schedule ? [ScheduleModule.forRoot()] : []), EventEmitterModule.forRoot()];
  const telemetryModule = telemetry ? [TelemetryModule.forRoot({ environment: 'test', ...telemetry })] : [];
  const moduleRef = await Test.createTestingModule({
    imports: first ? [...telemetryModule, ...packages] : [...packages, ...telemetryModule],
    providers: [...(schedule ? [Jobs] : []), OrderListeners, { provide: LABEL, useValue: label }],
    controllers: [OrdersController],
  }).compile();
  // Every instance is made by now; record in which order Nest calls the two explorers' onModuleInit.
  const hookOrder: string[] = [];
  for (const type of [ScheduleExplorer, JobErrorsExplorer]) {
    let explorer: { onModuleInit(): unknown } | undefined;
    try {
      explorer = moduleRef.get<{ onModuleInit(): unknown }>(type, { strict: false });
    } catch {
      continue;
    }
    const onModuleInit = explorer.onModuleInit.bind(explorer);
    explorer.onModuleInit = () => {
      hookOrder.push(type.name);
      return onModuleInit();
    };
  }
  const logger = new RecordingLogger();
  const app = moduleRef.createNestApplication({ logger });
  await app.listen(0, '127.0.0.1');
  return { app, jobs: schedule ? app.get(Jobs) : undefined, emitter: app.get(EventEmitter2), logger, hookOrder };
}

/** What the emitter answers for the same events, to compare with and without the module. */
async function emitterOutcomes(emitter: EventEmitter2, prefix: string) {
  const settle = (promise: Promise<unknown>) =>
    promise.then(
      (value) => ({ value }),
      (error: Error) => ({ error: `${error.constructor.name}: ${error.message}` }),
    );
  const emitted = emitter.emit('order.created', { id: `${prefix}:emit` });
  const created = await settle(emitter.emitAsync('order.created', { id: `${prefix}:emit-async` }));
  const paid = await settle(emitter.emitAsync('order.paid', { id: `${prefix}:paid` }));
  const declined = await settle(emitter.emitAsync('order.paid', { id: `${prefix}:declined` }));
  // The async handlers of the plain `emit` finish on their own.
  await new Promise((done) => setTimeout(done, 50));
  return { emitted, created, paid, declined };
}

/** The emitter's own log lines about failed handlers, as a sorted list. */
const handlerLogLines = (logger: RecordingLogger, prefix: string) =>
  logger.entries
    .map((e) => e.message)
    .filter((m) => m.includes(`${prefix}:`))
    .sort();

const crumbsOf = (event: SentryEnvelopeEvent): string[] => {
  const crumbs = event.breadcrumbs as { message?: string }[] | { values?: { message?: string }[] } | undefined;
  return (Array.isArray(crumbs) ? crumbs : (crumbs?.values ?? [])).map((c) => c.message ?? '');
};

let capture: CaptureServer;
let sentry: SentryServer;
/** The emitter without the module, before the module ever ran in this process. */
let baseline: { outcomes: Awaited<ReturnType<typeof emitterOutcomes>>; logLines: string[] };

const errorsOf = (label: string, endpoint?: string): CapturedEvent[] =>
  capture.eventsNamed(
    'api_error',
    (e) => String(e.properties.error_message).includes(label) && (endpoint === undefined || e.properties.endpoint === endpoint),
  );
const exceptionFor = (apiError: CapturedEvent) => capture.eventsNamed('$exception', (e) => e.uuid === apiError.properties.$exception_uuid);
const sentryEventFor = (apiError: CapturedEvent) => sentry.events.filter((e) => e.event_id === apiError.properties.sentry_event_id);

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not met within ${timeoutMs} ms: ${what}`);
    await new Promise((done) => setTimeout(done, 20));
  }
}

async function waitForSentry(apiErrors: CapturedEvent[]): Promise<void> {
  await waitUntil(() => apiErrors.every((e) => sentryEventFor(e).length > 0), 'a Sentry event for each api_error');
}

beforeAll(async () => {
  capture = await new CaptureServer().start();
  sentry = await new SentryServer().start();
  const bare = await createJobsApp('jobs-last', { schedule: false });
  baseline = { outcomes: await emitterOutcomes(bare.emitter, 'jobs-last'), logLines: handlerLogLines(bare.logger, 'jobs-last') };
  await bare.app.close();
});
afterAll(async () => {
  await capture.stop();
  await sentry.stop();
});

describe('jobs and events, TelemetryModule imported after ScheduleModule and EventEmitterModule', () => {
  const label = 'jobs-last';
  let subject: JobsApp;

  beforeAll(async () => {
    subject = await createJobsApp(label, { telemetry: sendingTo(capture.url, { sentry: sentryFor(sentry) }) });
  });
  afterAll(async () => {
    await subject.app.close();
  });

  it("is hooked though the scheduler's explorer ran first", () => {
    expect(subject.hookOrder).toEqual(['ScheduleExplorer', 'JobErrorsExplorer']);
  });

  it('reports each failing run of an interval once, with its $exception and Sentry event; the interval keeps running', async () => {
    const endpoint = 'interval:Jobs.refresh';
    await capture.waitFor(() => errorsOf(label, endpoint).length >= 3);
    await waitUntil(() => subject.jobs!.intervalRuns >= 6, 'three more runs after the failures');
    await subject.app.get(TelemetryService).flush();
    const apiErrors = errorsOf(label, endpoint);
    expect(apiErrors.map((e) => e.properties.error_message).sort()).toEqual([1, 2, 3].map((n) => `${label} interval failure ${n}`));
    const requestIds = apiErrors.map((e) => e.properties.request_id);
    expect(new Set(requestIds).size).toBe(3);
    for (const apiError of apiErrors) {
      expect(apiError.distinct_id).toBe('server');
      expect(apiError.properties).toMatchObject({
        endpoint,
        method: 'INTERVAL',
        status_code: 500,
        error_type: 'application_error',
        user_id: 'anonymous',
        environment: 'test',
        $process_person_profile: false,
      });
      expect(apiError.properties.request_id).toMatch(UUID);
      const [exception, ...more] = exceptionFor(apiError);
      expect(more).toEqual([]);
      expect(exception.properties).toMatchObject({ request_id: apiError.properties.request_id, endpoint, status_code: 500 });
    }
    await waitForSentry(apiErrors);
    for (const apiError of apiErrors) {
      const run = /failure (\d+)$/.exec(apiError.properties.error_message)![1];
      const events = sentry.eventsFor(apiError.properties.request_id);
      expect(events).toHaveLength(1);
      const [event] = events;
      expect(event.event_id).toBe(apiError.properties.sentry_event_id);
      expect(event.tags).toMatchObject({
        request_id: apiError.properties.request_id,
        endpoint,
        error_type: 'application_error',
        job_run: `interval-${run}`,
      });
      expect(event.exception?.values?.[0]?.value).toBe(`${label} interval failure ${run}`);
      // Its own breadcrumb, and nothing of the other runs, nor of the cron job running alongside.
      const crumbs = crumbsOf(event).filter((m) => m.startsWith(label));
      expect(crumbs).toEqual([`${label} interval run ${run}`]);
    }
    // What the job captured itself carries its run's request_id.
    await capture.waitFor(
      () => capture.eventsNamed('refresh_raw', (e) => e.properties.label === label && e.properties.run === 3).length === 1,
    );
    for (const apiError of apiErrors) {
      const run = Number(/failure (\d+)$/.exec(apiError.properties.error_message)![1]);
      for (const name of ['refresh_started', 'refresh_raw']) {
        const [own] = capture.eventsNamed(name, (e) => e.properties.label === label && e.properties.run === run);
        expect(own.distinct_id).toBe('server');
        expect(own.properties).toMatchObject({ request_id: apiError.properties.request_id, $process_person_profile: false });
      }
    }
    // The scheduler logged each failure, as it does without the module.
    expect(subject.logger.entries.filter((e) => e.message.includes(`${label} interval failure`))).toHaveLength(3);
  });

  it('names a job after its name option, else its class and method; a cron job that failed keeps being scheduled', async () => {
    await capture.waitFor(() => errorsOf(label, 'cron:nightly-import').length >= 1 && errorsOf(label, 'cron:Jobs.rotateKeys').length >= 1);
    await waitUntil(() => subject.jobs!.cronRuns >= 2 && subject.jobs!.unnamedCronRuns >= 2, 'a second run of each cron job');
    await subject.app.get(TelemetryService).flush();
    const [named, ...moreNamed] = errorsOf(label, 'cron:nightly-import');
    const [unnamed, ...moreUnnamed] = errorsOf(label, 'cron:Jobs.rotateKeys');
    expect([moreNamed, moreUnnamed]).toEqual([[], []]);
    expect(named.properties).toMatchObject({ method: 'CRON', error_message: `${label} cron failure 1` });
    expect(unnamed.properties).toMatchObject({ method: 'CRON', exception_type: 'TypeError' });
    expect(exceptionFor(named)).toHaveLength(1);
    await waitForSentry([named]);
    const [event] = sentryEventFor(named);
    expect(event.tags).toMatchObject({ endpoint: 'cron:nightly-import', job_run: 'cron-1', request_id: named.properties.request_id });
    expect(crumbsOf(event).filter((m) => m.startsWith(label))).toEqual([`${label} cron run 1`]);

    const [timeout, ...moreTimeouts] = errorsOf(label, 'timeout:warm-up');
    expect(moreTimeouts).toEqual([]);
    expect(timeout.properties).toMatchObject({ method: 'TIMEOUT', error_message: `${label} timeout failure` });
    expect(subject.jobs!.timeoutRuns).toBe(1);
  });

  it('leaves what the emitter answers and logs as it was without the module, and reports each failing handler once', async () => {
    const outcomes = await emitterOutcomes(subject.emitter, label);
    expect(outcomes).toEqual(baseline.outcomes);
    expect(outcomes).toEqual({
      emitted: true,
      created: { value: [undefined, undefined, `confirmed ${label}:emit-async`] },
      paid: { value: [`charged ${label}:paid`] },
      declined: { error: `Error: charge failed for ${label}:declined` },
    });
    expect(handlerLogLines(subject.logger, label)).toEqual(baseline.logLines);

    const expected = [
      ['event:order.created', `receipt failed for ${label}:emit`],
      ['event:order.created', `stock failed for ${label}:emit`],
      ['event:order.created', `receipt failed for ${label}:emit-async`],
      ['event:order.created', `stock failed for ${label}:emit-async`],
      ['event:order.paid', `charge failed for ${label}:declined`],
    ];
    await capture.waitFor(() =>
      expected.every(([, message]) => capture.eventsNamed('api_error', (e) => e.properties.error_message === message).length > 0),
    );
    await subject.app.get(TelemetryService).flush();
    const apiErrors = expected.map(([endpoint, message]) => {
      const found = capture.eventsNamed('api_error', (e) => e.properties.error_message === message);
      // Once, though `emitAsync` also rejects with the `order.paid` handler's error.
      expect(found).toHaveLength(1);
      expect(found[0].properties).toMatchObject({ endpoint, method: 'EVENT', status_code: 500 });
      expect(found[0].distinct_id).toBe('server');
      expect(exceptionFor(found[0])).toHaveLength(1);
      return found[0];
    });
    // Each call of a handler outside requests is a run of its own.
    expect(new Set(apiErrors.map((e) => e.properties.request_id)).size).toBe(apiErrors.length);
    await waitForSentry(apiErrors);
    for (const apiError of apiErrors) {
      const [event, ...more] = sentry.eventsFor(apiError.properties.request_id);
      expect(more).toEqual([]);
      expect(event.exception?.values?.[0]?.value).toBe(apiError.properties.error_message);
      expect((event.exception?.values?.[0] as { mechanism?: unknown } | undefined)?.mechanism).toMatchObject({
        handled: false,
        type: 'auto.event.nestjs_posthog_telemetry',
      });
      const receipts = crumbsOf(event).filter((m) => m.startsWith('receipt attempt'));
      const id = /for (\S+)$/.exec(apiError.properties.error_message)![1];
      expect(receipts).toEqual(apiError.properties.error_message.startsWith('receipt') ? [`receipt attempt ${id}`] : []);
    }
  });

  it("reports a handler that fails inside a request under that request's id, and keeps its breadcrumbs out of the request's Sentry event", async () => {
    const http = request(subject.app.getHttpServer());
    const placed = await http.get('/orders/in-request').set('X-Request-ID', 'jobs-in-request').expect(200);
    expect(placed.body).toEqual({ placed: 'in-request' });
    await http.get('/orders/then-fail/then-fail').set('X-Request-ID', 'jobs-then-fail').expect(500);
    await capture.waitFor(() => capture.forRequest('jobs-in-request').filter((e) => e.event === 'api_error').length === 2);
    await capture.waitFor(() => capture.forRequest('jobs-then-fail').filter((e) => e.event === 'api_error').length === 3);
    const inRequest = capture.forRequest('jobs-in-request');
    const apiRequest = inRequest.find((e) => e.event === 'api_request')!;
    expect(apiRequest.properties.status_code).toBe(200);
    for (const apiError of inRequest.filter((e) => e.event === 'api_error')) {
      expect(apiError.properties).toMatchObject({ endpoint: 'event:order.created', method: 'EVENT' });
      expect(apiError.distinct_id).toBe(apiRequest.distinct_id);
    }

    const failed = capture.forRequest('jobs-then-fail').filter((e) => e.event === 'api_error');
    const requestError = failed.find((e) => e.properties.endpoint === '/orders/:id/then-fail')!;
    expect(requestError.properties.error_message).toBe('request failed after placing then-fail');
    await waitForSentry(failed);
    const [requestEvent] = sentryEventFor(requestError);
    const [receiptError] = failed.filter((e) => String(e.properties.error_message).startsWith('receipt failed'));
    const [receiptEvent] = sentryEventFor(receiptError);
    expect(crumbsOf(receiptEvent)).toContain('receipt attempt then-fail');
    const leaked = crumbsOf(requestEvent).filter((m) => m.startsWith('receipt attempt') || m.startsWith(label));
    expect(leaked).toEqual([]);
    expect(requestEvent.tags?.job_run).toBeUndefined();
  });

  it('leaves a scheduled method the app calls itself inside a request to that request', async () => {
    await request(subject.app.getHttpServer()).get('/orders/reindex/now').set('X-Request-ID', 'jobs-direct').expect(500);
    await capture.waitFor(() => capture.forRequest('jobs-direct').some((e) => e.event === 'api_error'));
    await subject.app.get(TelemetryService).flush();
    const [apiError, ...more] = capture.forRequest('jobs-direct').filter((e) => e.event === 'api_error');
    expect(more).toEqual([]);
    expect(apiError.properties).toMatchObject({ endpoint: '/orders/reindex/now', error_message: `${label} reindex failure` });
    expect(errorsOf(label, 'interval:reindex')).toEqual([]);
  });
});

describe('jobs and events, TelemetryModule imported before ScheduleModule and EventEmitterModule', () => {
  const label = 'jobs-first';
  let subject: JobsApp;

  beforeAll(async () => {
    subject = await createJobsApp(label, { telemetry: sendingTo(capture.url, { sentry: sentryFor(sentry) }), first: true });
  });
  afterAll(async () => {
    await subject.app.close();
  });

  it('reports the failures of an interval, a timeout and event handlers', async () => {
    expect(subject.hookOrder).toEqual(['JobErrorsExplorer', 'ScheduleExplorer']);
    subject.emitter.emit('order.created', { id: `${label}:emit` });
    await capture.waitFor(
      () =>
        errorsOf(label, 'interval:Jobs.refresh').length >= 3 &&
        errorsOf(label, 'timeout:warm-up').length === 1 &&
        errorsOf(label, 'event:order.created').length === 2,
    );
    await waitUntil(() => subject.jobs!.intervalRuns >= 5, 'more runs after the failures');
    await subject.app.get(TelemetryService).flush();
    expect(errorsOf(label, 'interval:Jobs.refresh')).toHaveLength(3);
    const apiErrors = errorsOf(label);
    for (const apiError of apiErrors) expect(exceptionFor(apiError)).toHaveLength(1);
    await waitForSentry(apiErrors);
    for (const apiError of apiErrors) expect(sentry.eventsFor(apiError.properties.request_id)).toHaveLength(1);
    expect(subject.logger.count(/Telemetry .* failed/)).toBe(0);
  });
});

describe('captureJobErrors: false', () => {
  const label = 'jobs-off';

  it('sends nothing for jobs or handlers, which behave as without the module', async () => {
    const subject = await createJobsApp(label, {
      telemetry: sendingTo(capture.url, { sentry: sentryFor(sentry), captureJobErrors: false }),
    });
    const outcomes = await emitterOutcomes(subject.emitter, label);
    await waitUntil(() => subject.jobs!.intervalRuns >= 5 && subject.jobs!.timeoutRuns === 1, 'the interval and the timeout ran');
    await subject.app.close();
    expect(outcomes).toEqual({
      emitted: true,
      created: { value: [undefined, undefined, `confirmed ${label}:emit-async`] },
      paid: { value: [`charged ${label}:paid`] },
      declined: { error: `Error: charge failed for ${label}:declined` },
    });
    expect(subject.logger.entries.filter((e) => e.message.includes(`${label} interval failure`))).toHaveLength(3);
    expect(errorsOf(label)).toEqual([]);
    expect(capture.eventsNamed('$exception', (e) => JSON.stringify(e.properties).includes(label))).toEqual([]);
    expect(sentry.events.filter((e) => JSON.stringify(e.exception ?? {}).includes(label))).toEqual([]);
  });
});

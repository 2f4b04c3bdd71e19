import type { INestApplication, INestMicroservice } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import type { TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import { CaptureServer, type CapturedEvent } from './capture-server.js';
import {
  bootCaller,
  bootHybrid,
  bootMicroservice,
  CALLS,
  EMITS,
  got,
  loadNatsHeaders,
  plainClient,
  seenEvents,
  withOwnRequestId,
  type Got,
  type TransportAddress,
} from './rpc-apps.js';
import { SentryServer, sentryFor } from './sentry-server.js';
import { RecordingLogger } from './recording-logger.js';
import { sendingTo } from './test-app.js';
import { ask, comparable } from './twin-apps.js';

let sequence = 0;
const fresh = (label: string) => `${label}-${process.pid}-${++sequence}`;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** An anonymous visitor's distinct id, in the shape posthog-js makes it (the only kind taken from a header by default). */
const VISITOR = '0193a5b2-7c4e-7d1f-9a2b-3c4d5e6f7a8b';

/** Something to close at the end of a test, whatever happened. */
interface Closable {
  close(): Promise<unknown> | unknown;
}

/**
 * The microservices adapter against one transport: the same apps, booted as a
 * user would, with and without the module, talked to by a real `ClientProxy`
 * (and by an HTTP app calling through `ClientsModule`); answers compared as
 * data, events asserted as the loopback PostHog and Sentry receive them.
 * `address()` gives where the next server listens (a fresh TCP port, or the broker).
 */
export function describeRpcTransports(transports: [label: string, address: () => Promise<TransportAddress>][]): void {
  // One loopback PostHog and Sentry for the file: the process has one Sentry client, set up by the first module.
  let capture: CaptureServer;
  let sentry: SentryServer;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    sentry = await new SentryServer().start();
    await loadNatsHeaders();
  });

  afterAll(async () => {
    await capture.stop();
    await sentry.stop();
  });

  for (const [label, address] of transports) describeTransport(label, address, () => ({ capture, sentry }));
}

function describeTransport(
  label: string,
  address: () => Promise<TransportAddress>,
  servers: () => { capture: CaptureServer; sentry: SentryServer },
): void {
  let capture: CaptureServer;
  let sentry: SentryServer;
  const open: Closable[] = [];

  const telemetry = (): TelemetryModuleOptions => sendingTo(capture.url, { sentry: sentryFor(sentry) });
  const keep = <T extends Closable>(app: T): T => (open.push(app), app);

  beforeAll(() => {
    ({ capture, sentry } = servers());
  });

  beforeEach(() => capture.reset());

  afterEach(async () => {
    for (const app of open.splice(0).reverse()) await app.close();
  });

  /** `METHOD endpoint` of each event of a request, sorted: which operations it made, on which side of the hop. */
  const methodsAndEndpoints = (requestId: string): string[] =>
    capture
      .forRequest(requestId)
      .map((e) => `${e.properties.method} ${e.properties.endpoint}`)
      .sort();

  /** The events of one endpoint, once `expected` of them arrived, and a moment more so a duplicate would show. */
  async function eventsAt(endpoint: string, expected: string[]): Promise<CapturedEvent[]> {
    const at = () => capture.events.filter((e) => e.properties?.endpoint === endpoint || e.properties?.$exception_endpoint === endpoint);
    await capture.waitFor(() => expected.every((name) => at().some((e) => e.event === name)));
    await pause(200);
    return at();
  }

  /** Every call of `CALLS` from a plain client (no module on its side). */
  async function answersOf(server: TransportAddress): Promise<Record<string, Got>> {
    const client = keep(plainClient(server));
    const answers: Record<string, Got> = {};
    for (const [name, { pattern, data }] of Object.entries(CALLS)) answers[name] = await got(client, pattern, data);
    await client.close();
    return answers;
  }

  async function boot(kind: 'micro' | 'hybrid', withModule: boolean): Promise<TransportAddress> {
    const where = await address();
    const options = withModule ? telemetry() : undefined;
    keep(kind === 'micro' ? await bootMicroservice(where, options) : await bootHybrid(where, options));
    return where;
  }

  describe(`${label}: a microservice answers every caller exactly as without the module`, () => {
    it('request-response: values, streams, RpcException payloads, HttpExceptions, plain errors, unknown patterns', async () => {
      const bareAt = await boot('micro', false);
      const expected = await answersOf(bareAt);
      for (const app of open.splice(0).reverse()) await app.close();
      capture.reset();
      const moduleAt = await boot('micro', true);
      const actual = await answersOf(moduleAt);
      expect(actual).toEqual(expected);
      // What Nest answers without the module, for the record: nobody is left waiting.
      expect(expected.sum).toEqual({ values: [6] });
      expect(expected.fail).toEqual({ error: { status: 'error', message: 'Internal server error' } });
      expect(expected.rpcError).toEqual({ error: { code: 'E_QUOTA', detail: 'over quota' } });
      expect(expected.rpcString).toEqual({ error: { status: 'error', message: 'plain words' } });
      expect(expected.range).toEqual({ error: { from: 'range-filter', message: 'amount out of range' } });
      expect(expected.stream).toEqual({ values: [1, 2, 3] });
      expect(expected.echo).toEqual({ values: [{ data: CALLS.echo.data }] });

      const sum = await eventsAt('rpc:sum', ['api_request']);
      expect(sum.map((e) => e.event)).toEqual(['api_request']);
      expect(sum[0].properties).toMatchObject({ method: 'RPC', status_code: 200, success: true, environment: 'test' });
      expect(typeof sum[0].properties.request_id).toBe('string');

      const greet = await eventsAt('rpc:{"cmd":"greet","v":1}', ['api_request']);
      expect(greet.map((e) => e.event)).toEqual(['api_request']);

      const stream = await eventsAt('rpc:stream', ['api_request']);
      expect(stream.map((e) => e.event)).toEqual(['api_request']);

      const fail = await eventsAt('rpc:fail', ['api_request', 'api_error', '$exception']);
      expect(fail.map((e) => e.event).sort()).toEqual(['$exception', 'api_error', 'api_request']);
      const failError = fail.find((e) => e.event === 'api_error')!;
      expect(failError.properties).toMatchObject({ method: 'RPC', status_code: 500, error_type: 'application_error' });
      expect(fail.find((e) => e.event === 'api_request')!.properties).toMatchObject({ status_code: 500, success: false });
      const failRequest = failError.properties.request_id;
      expect(new Set(fail.map((e) => e.properties.request_id))).toEqual(new Set([failRequest]));
      await sentry.waitForRequests(failRequest);
      expect(sentry.eventsFor(failRequest)).toHaveLength(1);
      expect(sentry.eventsFor(failRequest)[0].tags).toMatchObject({ endpoint: 'rpc:fail' });
      expect(failError.properties.sentry_event_id).toBe(sentry.eventsFor(failRequest)[0].event_id);

      const rpcError = await eventsAt('rpc:rpc-error', ['api_request', 'api_error', '$exception']);
      expect(rpcError.filter((e) => e.event === 'api_error')).toHaveLength(1);

      const notFound = await eventsAt('rpc:not-found', ['api_request', 'api_error']);
      expect(notFound.map((e) => e.event).sort()).toEqual(['api_error', 'api_request']);
      expect(notFound.find((e) => e.event === 'api_error')!.properties).toMatchObject({ status_code: 404, error_type: 'client_error' });

      const range = await eventsAt('rpc:range', ['api_request', 'api_error']);
      expect(range.filter((e) => e.event === 'api_error')).toHaveLength(1);

      const streamFail = await eventsAt('rpc:stream-fail', ['api_request', 'api_error']);
      expect(streamFail.filter((e) => e.event === 'api_error')).toHaveLength(1);

      // Request-scoped controllers: the same events.
      expect((await eventsAt('rpc:scoped', ['api_request'])).map((e) => e.event)).toEqual(['api_request']);
      const scopedFail = await eventsAt('rpc:scoped-fail', ['api_request', 'api_error', '$exception']);
      expect(scopedFail.map((e) => e.event).sort()).toEqual(['$exception', 'api_error', 'api_request']);
      expect(expected.scoped).toEqual({ values: [{ scoped: 'per message' }] });

      // A pattern no handler takes reaches no code of the app: no event, as for no route at all.
      expect(capture.events.filter((e) => JSON.stringify(e.properties).includes('no-such-pattern'))).toEqual([]);
    });

    it("Nest's own error log lines are the same", async () => {
      const lines: string[][] = [];
      for (const withModule of [false, true]) {
        const logger = new RecordingLogger();
        const where = await address();
        keep(await bootMicroservice(where, withModule ? telemetry() : undefined, logger));
        const client = keep(plainClient(where));
        for (const name of ['fail', 'rpcError', 'notFound', 'range', 'streamFail'])
          await got(client, CALLS[name].pattern, CALLS[name].data);
        await lastValueFrom(client.emit(EMITS.auditFail.pattern, EMITS.auditFail.data), { defaultValue: undefined });
        await pause(200);
        // The app's handlers number their errors (Sentry's Dedupe): the same line, a different number.
        lines.push(
          logger.entries
            .filter((e) => e.context !== 'Telemetry' && /Error|Exception/.test(e.message + e.context))
            .map((e) => `${e.context}: ${e.message}`.replace(/\(\d+\)/g, '(n)')),
        );
        for (const app of open.splice(0).reverse()) await app.close();
      }
      expect(lines[0].length).toBeGreaterThan(0);
      expect(lines[1]).toEqual(lines[0]);
    });

    it('events: one event per message, method EVENT, a failing handler reported once, data as sent', async () => {
      const where = await boot('micro', true);
      const client = keep(plainClient(where));
      seenEvents.length = 0;
      for (const { pattern, data } of Object.values(EMITS)) await lastValueFrom(client.emit(pattern, data), { defaultValue: undefined });
      const audit = await eventsAt('rpc:audit', ['api_request']);
      expect(audit.map((e) => e.event)).toEqual(['api_request']);
      expect(audit[0].properties).toMatchObject({ method: 'EVENT', status_code: 200, success: true });
      const auditFail = await eventsAt('rpc:audit-fail', ['api_request', 'api_error', '$exception']);
      expect(auditFail.map((e) => e.event).sort()).toEqual(['$exception', 'api_error', 'api_request']);
      expect(auditFail.find((e) => e.event === 'api_error')!.properties).toMatchObject({ method: 'EVENT', status_code: 500 });
      // Two handlers of `audit` (two controllers): both ran, in the one operation of the message.
      expect(seenEvents.map(({ pattern, data }) => ({ pattern, data }))).toEqual([
        { pattern: 'audit', data: EMITS.audit.data },
        { pattern: 'audit (mirror)', data: EMITS.audit.data },
        { pattern: 'audit-fail', data: EMITS.auditFail.data },
      ]);
      expect(seenEvents[0].requestId).toBe(audit[0].properties.request_id);
      expect(seenEvents[1].requestId).toBe(audit[0].properties.request_id);
    });

    it("continues a caller's own request id sent in the documented field, data untouched", async () => {
      const where = await boot('micro', true);
      const client = keep(plainClient(where)) as ClientProxy;
      const requestId = fresh('own');
      const data = withOwnRequestId(where, client, requestId, { from: 'a caller' });
      expect(await got(client, 'whoami', data)).toEqual({ values: [{ requestId }] });
      const echoed = await got(client, 'echo', withOwnRequestId(where, client, requestId, CALLS.echo.data));
      expect(echoed).toEqual({ values: [{ data: CALLS.echo.data }] });
      await capture.waitFor(() => capture.forRequest(requestId).filter((e) => e.event === 'api_request').length === 2);
      expect(
        capture
          .forRequest(requestId)
          .map((e) => e.properties.endpoint)
          .sort(),
      ).toEqual(['rpc:echo', 'rpc:whoami']);
    });
  });

  describe(`${label}: one journey across the hop`, () => {
    it("the caller's HTTP request and the handler's events share request_id (send, emit, errors)", async () => {
      const where = await boot('micro', true);
      const caller = keep(await bootCaller(where, telemetry()));
      seenEvents.length = 0;

      const journey = fresh('journey');
      const answer = await ask(caller, { path: '/call/whoami', headers: { 'x-request-id': journey } });
      expect(JSON.parse(answer.body.toString())).toEqual({ values: [{ requestId: journey }] });
      await capture.waitFor(() => capture.forRequest(journey).filter((e) => e.event === 'api_request').length === 2);
      expect(methodsAndEndpoints(journey)).toEqual(['GET /call/:name', 'RPC rpc:whoami']);
      // One trace: the handler's span is a child of the caller's.
      const [http, rpc] = ['GET', 'RPC'].map(
        (method) => capture.forRequest(journey).find((e) => e.properties.method === method)!.properties,
      );
      expect(rpc.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(rpc.trace_id).toBe(http.trace_id);
      expect(rpc.parent_span_id).toBe(http.span_id);

      const emitted = fresh('journey');
      await ask(caller, { path: '/call/emit/audit', headers: { 'x-request-id': emitted } });
      await capture.waitFor(() => capture.forRequest(emitted).filter((e) => e.event === 'api_request').length === 2);
      expect(methodsAndEndpoints(emitted)).toEqual(['EVENT rpc:audit', 'GET /call/emit/:name']);
      expect(seenEvents).toEqual([
        { pattern: 'audit', data: EMITS.audit.data, requestId: emitted },
        { pattern: 'audit (mirror)', data: EMITS.audit.data, requestId: emitted },
      ]);

      const failed = fresh('journey');
      await ask(caller, { path: '/call/fail', headers: { 'x-request-id': failed } });
      await capture.waitFor(() => capture.forRequest(failed).some((e) => e.event === 'api_error'));
      await pause(200);
      const errors = capture.forRequest(failed).filter((e) => e.event === 'api_error');
      expect(errors.map((e) => e.properties.endpoint)).toEqual(['rpc:fail']);
      // The caller's user and session reach the service: one person across the hop.
      const anonymous = capture.forRequest(journey).find((e) => e.properties.endpoint === 'rpc:whoami')!;
      expect(anonymous.properties.$process_person_profile).toBe(false);
    });

    it("never overrides the caller's own request id field, nor changes its NATS record", async () => {
      const where = await boot('micro', true);
      const caller = keep(await bootCaller(where, telemetry()));
      const journey = fresh('journey');
      const own = fresh('own');
      const answer = await ask(caller, { path: `/call/own/${own}`, headers: { 'x-request-id': journey } });
      const body = JSON.parse(answer.body.toString());
      expect(body.answer).toEqual({ values: [{ requestId: own }] });
      expect(body.recordHeaders).toEqual(where.name === 'nats' ? [['x-request-id', own]] : null);
    });

    it('a frontend session and distinct id cross the hop with the request id', async () => {
      const where = await boot('micro', true);
      const caller = keep(await bootCaller(where, telemetry()));
      const journey = fresh('journey');
      await ask(caller, {
        path: '/call/sum',
        headers: { 'x-request-id': journey, 'x-posthog-session-id': 'session-42', 'x-posthog-distinct-id': VISITOR },
      });
      await capture.waitFor(() => capture.forRequest(journey).filter((e) => e.event === 'api_request').length === 2);
      for (const event of capture.forRequest(journey)) {
        expect({ endpoint: event.properties.endpoint, distinct_id: event.distinct_id, session: event.properties.$session_id }).toEqual({
          endpoint: event.properties.endpoint,
          distinct_id: VISITOR,
          session: 'session-42',
        });
      }
    });
  });

  describe(`${label}: HTTP callers answer the same with the module on the client side, the server side, or both`, () => {
    it('every combination gives the answers of the apps without the module', async () => {
      // Every call but the unknown pattern (compared above), which Redis callers only learn of by their timeout.
      const asks = [
        ...Object.keys(CALLS)
          .filter((name) => name !== 'unknown')
          .map((name) => `/call/${name}`),
        '/call/raw/fail',
        '/call/raw/rpcError',
        '/call/raw/notFound',
        '/call/raw/sum',
        '/call/emit/audit',
      ];
      const results: Record<string, unknown[]> = {};
      for (const [client, server] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const where = await boot('micro', server);
        const caller = keep(await bootCaller(where, client ? telemetry() : undefined));
        const answers: unknown[] = [];
        for (const path of asks) answers.push({ path, ...comparable(await ask(caller, { path })) });
        results[`client ${client ? 'with' : 'without'}, server ${server ? 'with' : 'without'} the module`] = answers;
        for (const app of open.splice(0).reverse()) await app.close();
      }
      const [baseline, ...others] = Object.values(results);
      for (const [name, answers] of Object.entries(results).slice(1)) expect({ name, answers }).toEqual({ name, answers: baseline });
      expect(others).toHaveLength(3);
    });
  });

  describe(`${label}: hybrid app (connectMicroservice with inheritAppConfig)`, () => {
    it('answers as without the module, and records each message', async () => {
      const bareAt = await boot('hybrid', false);
      const expected = await answersOf(bareAt);
      for (const app of open.splice(0).reverse()) await app.close();
      capture.reset();
      const moduleAt = await boot('hybrid', true);
      expect(await answersOf(moduleAt)).toEqual(expected);
      const sum = await eventsAt('rpc:sum', ['api_request']);
      expect(sum.map((e) => e.event)).toEqual(['api_request']);
      const fail = await eventsAt('rpc:fail', ['api_request', 'api_error', '$exception']);
      expect(fail.filter((e) => e.event === 'api_error')).toHaveLength(1);
      // Its HTTP side is tracked as before.
      const hybrid = open.find((app): app is INestApplication => typeof (app as INestApplication).getHttpServer === 'function')!;
      const id = fresh('hybrid-http');
      const notFound = await ask(hybrid, { path: '/nothing-here', headers: { 'x-request-id': id } });
      expect(notFound.status).toBe(404);
      await capture.waitFor(() => capture.forRequest(id).some((e) => e.event === 'api_request'));
    });
  });

  describe(`${label}: the module turned off for microservices`, () => {
    it('captureMicroservices: false records no message', async () => {
      const where = await address();
      keep((await bootMicroservice(where, { ...telemetry(), captureMicroservices: false })) as INestMicroservice);
      const caller = keep(await bootCaller(where, telemetry()));
      const id = fresh('off');
      const answer = await ask(caller, { path: '/call/sum', headers: { 'x-request-id': id } });
      expect(JSON.parse(answer.body.toString())).toEqual({ values: [6] });
      await capture.waitFor(() => capture.forRequest(id).some((e) => e.event === 'api_request'));
      await pause(300);
      expect(capture.events.filter((e) => String(e.properties?.endpoint).startsWith('rpc:'))).toEqual([]);
    });

    it('propagateToMicroservices: false sends no id: the handler starts its own', async () => {
      const where = await address();
      keep((await bootMicroservice(where, { ...telemetry(), propagateToMicroservices: false })) as INestMicroservice);
      const caller = keep(await bootCaller(where, { ...telemetry(), propagateToMicroservices: false }));
      const id = fresh('unlinked');
      const answer = await ask(caller, { path: '/call/whoami', headers: { 'x-request-id': id } });
      const handlerId = JSON.parse(answer.body.toString()).values[0].requestId;
      expect(typeof handlerId).toBe('string');
      expect(handlerId).not.toBe(id);
      await capture.waitFor(() => capture.forRequest(id).some((e) => e.event === 'api_request'));
      await capture.waitFor(() => capture.forRequest(handlerId).some((e) => e.properties.endpoint === 'rpc:whoami'));
      expect(capture.forRequest(id).map((e) => e.properties.endpoint)).toEqual(['/call/:name']);
    });
  });
}

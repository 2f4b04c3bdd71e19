import * as Sentry from '@sentry/node';
import { Controller, Get, Inject, Param, UseGuards, type CanActivate, type ExecutionContext, type INestApplication } from '@nestjs/common';
import { POSTHOG_CLIENT, TelemetryService } from 'nestjs-posthog-telemetry';
import { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { ClientRequest, createServer, get as httpGet, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PostHog } from 'posthog-node';
import request from 'supertest';
import { CaptureServer, type CapturedEvent } from './support/capture-server.js';
import { SentryServer } from './support/sentry-server.js';
import { ADAPTERS, createTestApp, sendingTo, type AdapterName } from './support/test-app.js';

/**
 * How the module behaves next to the app's own use of the same SDKs, with real
 * clients: the shared posthog-node client and the module's sender post to a capture server, and `@sentry/node`,
 * initialised here as an app does (`Sentry.init()` before Nest starts, tracing on), to a Sentry server.
 * Sentry's client is process-wide: one `Sentry.init()` for the file, both adapters use it.
 */

const TRACE_HEADERS = ['sentry-trace', 'baggage', 'traceparent'];
/** This file's Sentry environment, which its trace headers carry in `baggage`. */
const SENTRY_ENVIRONMENT = 'sdk-hygiene';

/**
 * Jest runs several test files in one process, each with its own copy of `@sentry/node`, whose clients stay
 * alive. On Node 20 Sentry instruments outgoing `http` by wrapping `ClientRequest.prototype._storeHeader`,
 * once per process: a copy from an earlier file would see this file's requests, and this file's copy none.
 * Unwrapped while this file runs, and put back as found. (Where Sentry listens on diagnostics channels
 * instead, Node 22.12+, an earlier copy still adds its own trace headers: see `tracedHere`.)
 */
type StoreHeader = ((...args: unknown[]) => unknown) & { __sentry_original__?: StoreHeader };
const clientRequestProto = ClientRequest.prototype as unknown as { _storeHeader: StoreHeader };
const storeHeaderAsFound = clientRequestProto._storeHeader;
function unwrapSentryHttp(): void {
  let original = clientRequestProto._storeHeader;
  while (original.__sentry_original__) original = original.__sentry_original__;
  clientRequestProto._storeHeader = original;
}

/** Trace headers that are this file's Sentry's: not those of another copy, whose `baggage` names its own environment. */
function tracedHere(headers: IncomingHttpHeaders): Record<string, unknown> {
  const baggage = String(headers.baggage ?? '');
  if (/sentry-environment=/.test(baggage) && !baggage.includes(`sentry-environment=${SENTRY_ENVIRONMENT}`)) return {};
  return Object.fromEntries(TRACE_HEADERS.filter((name) => headers[name] !== undefined).map((name) => [name, headers[name]]));
}

/** Ports of the servers that stand for other processes (PostHog, Sentry, another service). */
const testServerPorts = new Set<number>();

/** Another service the app calls itself: its requests are the app's, and are traced (the control). */
let outbound: { server: Server; url: string; headers: IncomingHttpHeaders[] };

/** Sets `request.user` from `Authorization: Bearer <id>` when present, never rejects. */
class OptionalUser implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest();
    const match = /^Bearer (\w+)$/.exec(request.headers.authorization ?? '');
    if (match) request.user = { id: match[1] };
    return true;
  }
}

/** One error object per key, thrown by every request that names it. */
const thrownTwice = new Map<string, Error>();

/** The async context of a request, as an app's own AsyncLocalStorage (a logger's, a CLS) keeps it. */
const appContext = new AsyncLocalStorage<string>();
/** Each request to a capture server, with the app context it was started in. */
const clientRequests: { port: number; context: string | undefined }[] = [];
const onHttpRequest = ({ request }: { request: { getHeader(name: string): unknown } }) =>
  clientRequests.push({ port: Number(String(request.getHeader('host')).split(':')[1]), context: appContext.getStore() });
const onFetchRequest = ({ request }: { request: { origin: string } }) =>
  clientRequests.push({ port: Number(new URL(request.origin).port), context: appContext.getStore() });

@Controller('hygiene')
@UseGuards(OptionalUser)
class HygieneController {
  constructor(
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    private readonly telemetry: TelemetryService,
  ) {}

  /** What a login, sign-up or webhook handler does: captures for a person it names itself. */
  @Get('named-person')
  namedPerson() {
    this.posthog.capture({ distinctId: 'user_7', event: 'signed_in', properties: { method: 'password' } });
    this.posthog.capture({
      distinctId: 'user_7',
      event: 'own_identity_fields',
      properties: { user_id: 'svc_billing', $process_person_profile: false },
    });
    this.posthog.capture({ distinctId: this.telemetry.getRequestContext()!.distinctId, event: 'request_distinct_id' });
    this.posthog.capture({ event: 'no_distinct_id' } as Parameters<PostHog['capture']>[0]);
    this.posthog.identify({ distinctId: 'user_7', properties: { plan: 'pro' } });
    this.posthog.alias({ distinctId: 'user_7', alias: 'legacy_7' });
    return { ok: true };
  }

  /** The app reports the error to Error Tracking itself, then lets it fail the request. */
  @Get('posthog-first')
  posthogFirst() {
    const error = new Error('reported to Error Tracking by the app first');
    this.posthog.captureException(error, undefined, { reported_by: 'app' });
    throw error;
  }

  /** An error some other code already marked as sent to PostHog: posthog-node sends no `$exception` for it. */
  @Get('marked-captured')
  markedCaptured() {
    throw Object.assign(new Error('already marked as captured'), { __posthog_previously_captured_error: true });
  }

  /** The app reports the error to Sentry itself first. */
  @Get('sentry-first')
  sentryFirst() {
    const error = new Error('reported to Sentry by the app first');
    Sentry.captureException(error);
    throw error;
  }

  @Get('thrown-twice/:key')
  thrownTwice(@Param('key') key: string) {
    if (!thrownTwice.has(key)) thrownTwice.set(key, new Error(`one error object thrown by two requests (${key})`));
    throw thrownTwice.get(key);
  }

  /** The app's own outgoing calls, then its own and the module's deliveries, then a failure. */
  @Get('busy/:n')
  async busy(@Param('n') n: string) {
    appContext.enterWith(this.telemetry.getRequestContext()!.requestId);
    await fetch(outbound.url + '/fetched');
    await new Promise<void>((done, fail) => httpGet(outbound.url + '/requested', (res) => res.resume().on('end', done)).on('error', fail));
    this.telemetry.capture('work_done');
    this.posthog.capture({ event: 'work_done_node' });
    this.posthog.captureException(new Error('side failure, reported by the app'));
    await this.telemetry.flush();
    await this.posthog.flush();
    throw new Error(`failed after the deliveries (${n})`); // distinct: Sentry's Dedupe drops a repeat
  }
}

let sentry: SentryServer;
beforeAll(async () => {
  sentry = await new SentryServer().start();
  const server = createServer((req, res) => {
    outbound.headers.push(req.headers);
    // No kept-alive socket: undici would answer a later request in the context of the one that opened it.
    res.setHeader('Connection', 'close');
    res.end('ok');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  outbound = { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, headers: [] };
  testServerPorts.add(Number(new URL(sentry.dsn).port)).add(Number(new URL(outbound.url).port));
  subscribe('http.client.request.start', onHttpRequest as (message: unknown) => void);
  subscribe('undici:request:create', onFetchRequest as (message: unknown) => void);
  // As an app does before Nest starts, tracing every request. Without the Fastify integration: see `sentryFor()`.
  // The test's own servers run in this process too: their incoming requests are no part of the app's traces.
  unwrapSentryHttp();
  Sentry.init({
    dsn: sentry.dsn,
    environment: SENTRY_ENVIRONMENT,
    tracesSampleRate: 1,
    integrations: (integrations: { name: string }[]) => [
      ...integrations.filter((i) => i.name !== 'Fastify' && i.name !== 'Http'),
      Sentry.httpIntegration({ ignoreIncomingRequests: (_url, request) => testServerPorts.has(request.socket?.localPort ?? -1) }),
    ],
  } as Parameters<typeof Sentry.init>[0]);
});
afterAll(async () => {
  unsubscribe('http.client.request.start', onHttpRequest as (message: unknown) => void);
  unsubscribe('undici:request:create', onFetchRequest as (message: unknown) => void);
  await Sentry.close(2000);
  clientRequestProto._storeHeader = storeHeaderAsFound;
  await sentry.stop();
  outbound.server.closeAllConnections();
  await new Promise<void>((done) => outbound.server.close(() => done()));
});

describe.each(ADAPTERS)('the SDKs the app shares, over %s', (adapter: AdapterName) => {
  let capture: CaptureServer;
  let app: INestApplication;
  let http: ReturnType<typeof request>;
  let sequence = 0;
  const nextId = (what: string) => `hygiene-${adapter}-${what}-${++sequence}`;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    testServerPorts.add(capture.port);
    app = await createTestApp(adapter, sendingTo(capture.url), { controllers: [HygieneController] });
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    await capture.stop();
  });

  const named = (events: CapturedEvent[], name: string) => events.filter((e) => e.event === name);

  it("lets a distinct id the app names win over the request's identity, and keeps the request's correlation", async () => {
    const anonymous = nextId('anonymous');
    const signedIn = nextId('signed-in');
    const { length: identifiesBefore } = capture.eventsNamed('$identify');
    await http.get('/hygiene/named-person').set({ 'X-Request-ID': anonymous, 'X-POSTHOG-SESSION-ID': 'sess-5' }).expect(200);
    await http.get('/hygiene/named-person').set({ 'X-Request-ID': signedIn, Authorization: 'Bearer user_42' }).expect(200);
    const names = ['signed_in', 'own_identity_fields', 'request_distinct_id', 'no_distinct_id', 'api_request'];
    await capture.waitFor(() => [anonymous, signedIn].every((id) => names.every((n) => named(capture.forRequest(id), n).length === 1)));
    await capture.waitFor(
      () => capture.eventsNamed('$identify').length === identifiesBefore + 2 && capture.eventsNamed('$create_alias').length >= 2,
    );
    const one = (id: string, name: string) => named(capture.forRequest(id), name)[0];

    for (const id of [anonymous, signedIn]) {
      // A person the app names: the request's correlation, not its identity.
      expect(one(id, 'signed_in').distinct_id).toBe('user_7');
      expect(one(id, 'signed_in').properties).toMatchObject({ request_id: id, environment: 'test', method: 'password' });
      expect(one(id, 'signed_in').properties).not.toHaveProperty('$process_person_profile');
      expect(one(id, 'signed_in').properties).not.toHaveProperty('user_id');
      // What the caller passes itself wins.
      expect(one(id, 'own_identity_fields').distinct_id).toBe('user_7');
      expect(one(id, 'own_identity_fields').properties).toMatchObject({
        request_id: id,
        user_id: 'svc_billing',
        $process_person_profile: false,
      });
    }
    expect(one(anonymous, 'signed_in').properties.$session_id).toBe('sess-5');

    // The request's own distinct id, named or not: the request's identity, as before.
    for (const name of ['request_distinct_id', 'no_distinct_id']) {
      const [anon, user] = [one(anonymous, name), one(signedIn, name)];
      expect(anon.distinct_id).toBe(one(anonymous, 'api_request').distinct_id);
      expect(anon.properties).toMatchObject({
        request_id: anonymous,
        $session_id: 'sess-5',
        environment: 'test',
        user_id: 'anonymous',
        $process_person_profile: false,
      });
      expect(user.distinct_id).toBe('user_42');
      expect(user.properties).toMatchObject({ request_id: signedIn, environment: 'test', user_id: 'user_42' });
      expect(user.properties).not.toHaveProperty('$process_person_profile');
    }

    // identify() and alias() carry no request context at all (posthog-node's own choice).
    for (const event of [...capture.eventsNamed('$identify'), ...capture.eventsNamed('$create_alias')]) {
      expect(event.distinct_id).toBe('user_7');
      for (const key of ['request_id', 'user_id', 'environment', '$process_person_profile', '$session_id'])
        expect(event.properties).not.toHaveProperty(key);
    }
  });

  it('sends an error the app already reported to Error Tracking once, and links the api_error only to a $exception that was sent', async () => {
    const first = nextId('posthog-first');
    const marked = nextId('marked');
    await http.get('/hygiene/posthog-first').set('X-Request-ID', first).expect(500);
    await http.get('/hygiene/marked-captured').set('X-Request-ID', marked).expect(500);
    await capture.waitFor(() => [first, marked].every((id) => named(capture.forRequest(id), 'api_error').length === 1));
    await new Promise((done) => setTimeout(done, 300));
    const sent = capture.eventsNamed('$exception');
    const appFirst = sent.filter((e) => e.properties.$exception_list?.[0]?.value === 'reported to Error Tracking by the app first');
    expect(appFirst).toHaveLength(1);
    expect(appFirst[0].properties.reported_by).toBe('app');
    // The api_error links to the one that was sent: the app's.
    const [firstError] = named(capture.forRequest(first), 'api_error');
    expect(firstError.properties.$exception_uuid).toBe(appFirst[0].uuid);
    expect(sent.filter((e) => e.properties.$exception_list?.[0]?.value === 'already marked as captured')).toEqual([]);
    const [markedError] = named(capture.forRequest(marked), 'api_error');
    expect(markedError.properties).not.toHaveProperty('$exception_uuid');
  });

  it('links the api_error only to a Sentry event and a $exception that were sent: not for an error the app sent itself, nor twice for one error', async () => {
    const first = nextId('sentry-first');
    const twiceA = nextId('twice-a');
    const twiceB = nextId('twice-b');
    await http.get('/hygiene/sentry-first').set('X-Request-ID', first).expect(500);
    await http.get(`/hygiene/thrown-twice/${adapter}`).set('X-Request-ID', twiceA).expect(500);
    await http.get(`/hygiene/thrown-twice/${adapter}`).set('X-Request-ID', twiceB).expect(500);
    await capture.waitFor(() => [first, twiceA, twiceB].every((id) => named(capture.forRequest(id), 'api_error').length === 1));
    await sentry.waitForRequests(twiceA);
    await Sentry.flush(2000);
    await new Promise((done) => setTimeout(done, 200));
    const apiError = (id: string) => named(capture.forRequest(id), 'api_error')[0];
    const sentryEvents = (id: string) =>
      sentry.events.filter((e) => (e.request as { headers?: Record<string, string> } | undefined)?.headers?.['x-request-id'] === id);
    // The app's own Sentry event is the only one for its error; Sentry would not send another.
    expect(sentryEvents(first).map((e) => e.exception?.values?.[0]?.value)).toEqual(['reported to Sentry by the app first']);
    expect(apiError(first).properties).not.toHaveProperty('sentry_event_id');
    // One error object, two requests: Sentry sends it for the first only.
    const [sentOnce] = sentryEvents(twiceA);
    expect(apiError(twiceA).properties.sentry_event_id).toBe(sentOnce.event_id);
    expect(sentryEvents(twiceB)).toEqual([]);
    expect(apiError(twiceB).properties).not.toHaveProperty('sentry_event_id');
    // PostHog: one $exception for the object, which both api_errors name.
    const [exception, ...more] = capture.eventsNamed(
      '$exception',
      (e) => e.properties.$exception_list?.[0]?.value === `one error object thrown by two requests (${adapter})`,
    );
    expect(more).toEqual([]);
    expect(exception.properties.request_id).toBe(twiceA);
    expect(apiError(twiceA).properties.$exception_uuid).toBe(exception.uuid);
    expect(apiError(twiceB).properties.$exception_uuid).toBe(exception.uuid);
    // Every link, of every request so far, names an event that was sent.
    const sentIds = new Set(sentry.events.map((e) => e.event_id));
    const uuids = new Set(capture.eventsNamed('$exception').map((e) => e.uuid));
    for (const error of capture.eventsNamed('api_error')) {
      if (error.properties.$exception_uuid !== undefined) expect(uuids.has(error.properties.$exception_uuid)).toBe(true);
      if (error.properties.sentry_event_id !== undefined) expect(sentIds.has(error.properties.sentry_event_id)).toBe(true);
    }
  });

  it("keeps the module's own deliveries to PostHog out of the app's traces, trace headers and breadcrumbs", async () => {
    const ids = [nextId('busy'), nextId('busy')];
    const before = { capture: capture.requestHeaders.length, outbound: outbound.headers.length };
    clientRequests.length = 0;
    for (const [n, id] of ids.entries()) await http.get(`/hygiene/busy/${n}`).set('X-Request-ID', id).expect(500);
    await http.get('/errors/application').set('X-Request-ID', nextId('error')).expect(500);
    await capture.waitFor(() =>
      ids.every(
        (id) => named(capture.forRequest(id), 'api_error').length === 1 && named(capture.forRequest(id), 'work_done_node').length === 1,
      ),
    );
    await sentry.waitForRequests(...ids);
    await app.get(TelemetryService).flush();
    await Sentry.flush(2000);
    await new Promise((done) => setTimeout(done, 300));

    // The control: Sentry traces this process, and the app's own outgoing calls carry its trace headers.
    const control = outbound.headers.slice(before.outbound);
    expect(control).toHaveLength(2 * ids.length);
    for (const headers of control) expect(headers['sentry-trace']).toEqual(expect.any(String));
    expect(JSON.stringify(sentry.traces)).toContain(outbound.url);

    // The module's deliveries (its sender and the shared posthog-node client) carry none.
    const deliveries = capture.requestHeaders.slice(before.capture);
    expect(deliveries.length).toBeGreaterThan(0);
    for (const client of [/^nestjs-posthog-telemetry\//, /^posthog-node\//])
      expect(deliveries.filter((h) => client.test(String(h['user-agent']))).length).toBeGreaterThan(0);
    for (const headers of deliveries) expect(tracedHere(headers)).toEqual({});

    // None of them started in the context of the request that queued the event or asked for the flush.
    const ours = clientRequests.filter((d) => d.port === capture.port);
    expect(ours.length).toBeGreaterThan(0);
    expect(ours.filter((d) => d.context !== undefined)).toEqual([]);

    // No span, no breadcrumb, nothing sent to Sentry names PostHog's endpoint.
    const wire = sentry.raw.join('\n');
    expect(wire).not.toContain(capture.url);
    expect(wire).not.toContain('/batch');
    for (const id of ids) {
      const [event] = sentry.eventsFor(id);
      const urls = ((event.breadcrumbs as { data?: { url?: string } }[] | undefined) ?? []).map((b) => b.data?.url ?? '');
      expect(urls.filter((url) => url.startsWith(outbound.url))).toHaveLength(2);
      expect(urls.filter((url) => url.startsWith(capture.url))).toEqual([]);
    }
  });
});

import { randomUUID } from 'node:crypto';
import 'reflect-metadata';
import {
  Catch,
  Inject,
  Injectable,
  NotFoundException,
  Scope,
  UseFilters,
  UseGuards,
  type ArgumentsHost,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import { BaseWsExceptionFilter, ConnectedSocket, MessageBody, SubscribeMessage, WebSocketGateway, WsException } from '@nestjs/websockets';
import type { AddressInfo } from 'node:net';
import { from, map, Observable, throwError } from 'rxjs';
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { getRequestContext, SkipTelemetry, type TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import { CaptureServer, type CapturedEvent } from './support/capture-server.js';
import { RecordingLogger } from './support/recording-logger.js';
import { SentryServer, sentryFor } from './support/sentry-server.js';
import { ADAPTERS, type AdapterName, sendingTo } from './support/test-app.js';
import { ask, bootApp, type AppShape } from './support/twin-apps.js';

/**
 * WebSocket gateways, with socket.io (Nest's default IoAdapter) and `ws`
 * (WsAdapter), on Express and Fastify: each app is booted with and without
 * the module and talked to by a real client; what the client receives
 * (messages, acks, `exception` payloads) must be identical, and the events on
 * the loopback PostHog and Sentry must say what happened, one per message.
 */

let sequence = 0;
const fresh = (label: string) => `${label}-${process.pid}-${++sequence}`;

/** What handlers saw of `getRequestContext()`, by the label the client sent. */
const seenContexts = new Map<string, ReturnType<typeof getRequestContext>>();

/** A guard of the common recipe: the user (from the handshake's `auth` or query) put on `client.data.user` or `client.user`. */
@Injectable()
class WsAuthGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const client = context.switchToWs().getClient();
    const token = client.handshake?.auth?.token ?? client.token;
    if (token === 'denied') return false;
    if (typeof token === 'string') {
      const user = { id: `user-${token}`, email: `${token}@example.com` };
      if (client.handshake) client.data.user = user;
      else client.user = user;
    }
    return true;
  }
}

/** An app filter for one handler: it answers in its own words. */
@Catch()
class AppWsFilter extends BaseWsExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost) {
    const client = host.switchToWs().getClient();
    const payload = { from: 'app-filter', message: exception instanceof Error ? exception.message : String(exception) };
    if (typeof client.readyState === 'number' && typeof client.send === 'function')
      client.send(JSON.stringify({ event: 'app-error', data: payload }));
    else client.emit('app-error', payload);
  }
}

@WebSocketGateway()
@UseGuards(WsAuthGuard)
class ChatGateway {
  /** `ws` hands the upgrade request to `handleConnection` only: the recipe keeps what it needs on the client. */
  handleConnection(client: any, request?: { url?: string }) {
    const token = request?.url ? new URL(request.url, 'http://localhost').searchParams.get('token') : null;
    if (token) client.token = token;
  }

  @SubscribeMessage('sum')
  sum(@MessageBody() numbers: number[]) {
    return numbers.reduce((a, b) => a + b, 0);
  }

  @SubscribeMessage('echo')
  echo(@MessageBody() data: unknown) {
    return { event: 'echoed', data };
  }

  /** Keeps what `getRequestContext()` says inside the handler, after an await, under the label it was sent; answers the same either way. */
  @SubscribeMessage('context')
  async context(@MessageBody() label: string) {
    await new Promise((done) => setTimeout(done, 5));
    seenContexts.set(label, getRequestContext());
    return { event: 'context', data: 'ok' };
  }

  @SubscribeMessage('ws-fail')
  wsFail(@MessageBody() data: unknown) {
    throw new WsException(`bad input ${JSON.stringify(data)}`);
  }

  @SubscribeMessage('ws-fail-object')
  wsFailObject() {
    throw new WsException({ code: 'E_OBJECT', message: 'object payload' });
  }

  @SubscribeMessage('boom')
  boom(@MessageBody() data: { label: string }) {
    throw new Error(`boom ${data.label}`);
  }

  @SubscribeMessage('async-boom')
  async asyncBoom(@MessageBody() data: { label: string }) {
    await new Promise((done) => setTimeout(done, 5));
    throw new TypeError(`async boom ${data.label}`);
  }

  @SubscribeMessage('stream')
  stream(): Observable<{ event: string; data: number }> {
    return from([1, 2, 3]).pipe(map((n) => ({ event: 'tick', data: n })));
  }

  @SubscribeMessage('stream-fail')
  streamFail(@MessageBody() data: { label: string }): Observable<never> {
    return throwError(() => new Error(`stream failure ${data.label}`));
  }

  @SubscribeMessage('filtered')
  @UseFilters(AppWsFilter)
  filtered(@MessageBody() data: { label: string }) {
    throw new Error(`filtered ${data.label}`);
  }

  /** An HTTP exception in a gateway: Nest answers it as an unknown error, unless an app filter takes it. */
  @SubscribeMessage('not-found')
  notFound() {
    throw new NotFoundException('no such room');
  }

  @SubscribeMessage('not-found-filtered')
  @UseFilters(AppWsFilter)
  notFoundFiltered() {
    throw new NotFoundException('no such room, filtered');
  }

  @SubscribeMessage('quiet')
  @SkipTelemetry()
  quiet() {
    return { event: 'quiet', data: 'ok' };
  }

  @SubscribeMessage('whoami')
  whoami(@ConnectedSocket() client: any) {
    const user = client.data?.user ?? client.user;
    return { event: 'whoami', data: user?.id ?? null };
  }
}

/** A gateway under socket.io's own custom `path`. */
@WebSocketGateway({ path: '/realtime' })
class RealtimeGateway {
  @SubscribeMessage('sum')
  sum(@MessageBody() numbers: number[]) {
    return numbers.reduce((a, b) => a + b, 0);
  }
}

let connectionScopes = 0;
/** A provider made per connection: the gateway that injects it is request-scoped. */
@Injectable({ scope: Scope.REQUEST })
class PerConnection {
  readonly number = ++connectionScopes;
}

@WebSocketGateway()
class ScopedGateway {
  constructor(@Inject(PerConnection) private readonly scope: PerConnection) {}

  @SubscribeMessage('scoped')
  scoped(@MessageBody() data: { fail?: boolean }) {
    if (data?.fail) throw new Error('scoped failure');
    return { event: 'scoped', data: typeof this.scope.number };
  }
}

type Kind = 'socket.io' | 'ws';

function shapeFor(kind: Kind): AppShape {
  return {
    providers: [ChatGateway],
    setup: (app) => {
      if (kind === 'ws') app.useWebSocketAdapter(new WsAdapter(app));
    },
  };
}

const portOf = (app: INestApplication) => (app.getHttpServer().address() as AddressInfo).port;

/** Waits (bounded) until `check` holds. */
async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check() && Date.now() < end) await new Promise((done) => setTimeout(done, 10));
}

/** One step of a conversation: a message sent, and how many things the client then receives. */
interface Step {
  event: string;
  data?: unknown;
  /** Things received in answer (messages, acks, exceptions). */
  expect: number;
  /** socket.io: send with an ack callback. */
  ack?: boolean;
}

function conversation(label: string): Step[] {
  return [
    { event: 'sum', data: [1, 2, 3], expect: 1, ack: true },
    { event: 'echo', data: { hello: label }, expect: 1 },
    { event: 'echo', data: { hello: label }, expect: 1, ack: true },
    { event: 'context', data: label, expect: 1 },
    { event: 'ws-fail', data: { label }, expect: 1 },
    { event: 'ws-fail-object', expect: 1, ack: true },
    { event: 'boom', data: { label }, expect: 1, ack: true },
    { event: 'async-boom', data: { label }, expect: 1 },
    { event: 'stream', expect: 3 },
    { event: 'stream-fail', data: { label }, expect: 1 },
    { event: 'filtered', data: { label }, expect: 1 },
    { event: 'not-found', expect: 1 },
    { event: 'not-found-filtered', expect: 1 },
    { event: 'quiet', expect: 1 },
    { event: 'whoami', expect: 1 },
  ];
}

interface Handshake {
  headers?: Record<string, string>;
  token?: string;
}

/** Talks to the app's socket.io gateway; returns what the client received, in order. */
async function talkSocketIo(app: INestApplication, steps: Step[], handshake: Handshake = {}): Promise<unknown[]> {
  const socket: Socket = io(`http://127.0.0.1:${portOf(app)}`, {
    transports: ['websocket'],
    extraHeaders: handshake.headers,
    auth: handshake.token ? { token: handshake.token } : undefined,
    reconnection: false,
    forceNew: true,
  });
  const received: unknown[] = [];
  socket.onAny((event, ...args) => received.push(['event', event, ...args]));
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    for (const step of steps) {
      const before = received.length;
      if (step.ack) socket.emit(step.event, step.data, (answer: unknown) => received.push(['ack', step.event, answer]));
      else socket.emit(step.event, step.data);
      await until(() => received.length >= before + step.expect);
      // Anything more than expected shows in the comparison.
      await new Promise((done) => setTimeout(done, 15));
    }
  } finally {
    socket.disconnect();
  }
  return received;
}

/** Talks to the app's `ws` gateway; returns the frames the client received, as text. */
async function talkWs(app: INestApplication, steps: Step[], handshake: Handshake = {}): Promise<unknown[]> {
  const query = handshake.token ? `/?token=${handshake.token}` : '/';
  const socket = new WebSocket(`ws://127.0.0.1:${portOf(app)}${query}`, { headers: handshake.headers });
  const received: unknown[] = [];
  socket.on('message', (frame) => received.push(frame.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    for (const step of steps) {
      const before = received.length;
      socket.send(JSON.stringify({ event: step.event, data: step.data }));
      await until(() => received.length >= before + step.expect);
      await new Promise((done) => setTimeout(done, 15));
    }
  } finally {
    socket.terminate();
  }
  return received;
}

const talk = (kind: Kind, app: INestApplication, steps: Step[], handshake?: Handshake) =>
  kind === 'socket.io' ? talkSocketIo(app, steps, handshake) : talkWs(app, steps, handshake);

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

const KINDS: Kind[] = ['socket.io', 'ws'];

describe.each(ADAPTERS)('WebSocket gateways on %s', (adapter: AdapterName) => {
  describe.each(KINDS)('with %s', (kind: Kind) => {
    let withModule: INestApplication;
    let without: INestApplication;
    const options = (): TelemetryModuleOptions => sendingTo(capture.url, { sentry: sentryFor(sentry) });

    beforeAll(async () => {
      without = await bootApp(adapter, shapeFor(kind));
      withModule = await bootApp(adapter, shapeFor(kind), options());
    });

    afterAll(async () => {
      await withModule?.close();
      await without?.close();
    });

    it('the client receives the same messages, acks and exception payloads with and without the module', async () => {
      const label = fresh(`${kind}-${adapter}-twin`);
      const steps = conversation(label);
      const bare = await talk(kind, without, steps);
      const tracked = await talk(kind, withModule, steps);
      expect(tracked).toEqual(bare);
      // The conversation did reach every handler: nothing above compared two silences.
      expect(bare.length).toBe(steps.reduce((n, s) => n + s.expect, 0));
    });

    it('one api_request per message, errors reported once, with the handshake ids and the user', async () => {
      const connectionId = fresh(`${kind}-${adapter}-conn`);
      const label = fresh(`${kind}-${adapter}-events`);
      const headers = {
        'X-Request-ID': connectionId,
        'X-POSTHOG-SESSION-ID': `session-${connectionId}`,
        'X-POSTHOG-DISTINCT-ID': `front-${connectionId}`,
      };
      const steps = conversation(label);
      await talk(kind, withModule, steps, { headers, token: 'alice' });
      const ofConnection = (e: CapturedEvent) => String(e.properties.request_id).startsWith(`${connectionId}:`);
      const tracked = steps.filter((s) => s.event !== 'quiet').length;
      const events = await capture.waitFor((all) => all.filter((e) => e.event === 'api_request' && ofConnection(e)).length >= tracked);
      const requests = events.filter((e) => e.event === 'api_request' && ofConnection(e));
      expect(requests).toHaveLength(tracked);
      const byEndpoint = (endpoint: string) => requests.filter((e) => e.properties.endpoint === endpoint);
      for (const step of steps.filter((s) => s.event !== 'quiet')) expect(byEndpoint(`ws:${step.event}`).length).toBeGreaterThan(0);
      expect(byEndpoint('ws:quiet')).toHaveLength(0);

      // Each message its own request id: the connection's, with the message's number.
      const ids = requests.map((e) => e.properties.request_id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of ids) expect(id).toMatch(new RegExp(`^${connectionId}:\\d+$`));

      for (const e of requests) {
        expect(e.properties.method).toBe('WS');
        expect(e.properties.$session_id).toBe(`session-${connectionId}`);
        expect(e.properties.environment).toBe('test');
        expect(typeof e.properties.response_time_ms).toBe('number');
      }
      const status = (event: string) => byEndpoint(`ws:${event}`)[0].properties;
      expect(status('sum')).toMatchObject({ status_code: 200, success: true });
      expect(status('stream')).toMatchObject({ status_code: 200, success: true });
      expect(status('ws-fail')).toMatchObject({ status_code: 400, success: false });
      expect(status('boom')).toMatchObject({ status_code: 500, success: false });
      expect(status('async-boom')).toMatchObject({ status_code: 500, success: false });
      expect(status('stream-fail')).toMatchObject({ status_code: 500, success: false });
      expect(status('filtered')).toMatchObject({ status_code: 500, success: false });
      expect(status('not-found')).toMatchObject({ status_code: 500, success: false });
      expect(status('not-found-filtered')).toMatchObject({ status_code: 404, success: false });

      // The guard set the user on the connection before the first handler ran; every message carries it.
      expect(status('whoami').user_id).toBe('user-alice');
      expect(byEndpoint('ws:whoami')[0].distinct_id).toBe('user-alice');

      // Errors: one api_error each, for the failing messages only.
      const failing = ['ws-fail', 'ws-fail-object', 'boom', 'async-boom', 'stream-fail', 'filtered', 'not-found', 'not-found-filtered'];
      const errorsFor = (event: string) =>
        capture.eventsNamed('api_error', (e) => ofConnection(e) && e.properties.endpoint === `ws:${event}`);
      await capture.waitFor(() => failing.every((event) => errorsFor(event).length > 0));
      for (const event of failing) expect(errorsFor(event)).toHaveLength(1);
      expect(capture.eventsNamed('api_error', ofConnection)).toHaveLength(failing.length);
      // The error's request id is its message's.
      const boomRequest = status('boom').request_id;
      expect(errorsFor('boom')[0].properties.request_id).toBe(boomRequest);

      // Server errors go to Error Tracking and Sentry, client errors (WsException) do not.
      const exceptionsFor = (requestId: string) => capture.eventsNamed('$exception', (e) => e.properties.request_id === requestId);
      await capture.waitFor(() => exceptionsFor(boomRequest).length > 0);
      expect(exceptionsFor(boomRequest)).toHaveLength(1);
      expect(exceptionsFor(status('ws-fail').request_id)).toHaveLength(0);
      expect(exceptionsFor(status('not-found-filtered').request_id)).toHaveLength(0);
      expect(errorsFor('not-found-filtered')[0].properties.status_code).toBe(404);
      await sentry.waitForRequests(boomRequest, status('async-boom').request_id);
      expect(sentry.eventsFor(boomRequest)).toHaveLength(1);
      expect(sentry.eventsFor(status('ws-fail').request_id)).toHaveLength(0);
    });

    it('a guard that rejects: the same exception answer, an api_error with status 403', async () => {
      const connectionId = fresh(`${kind}-${adapter}-denied`);
      const steps: Step[] = [{ event: 'echo', data: 'x', expect: 1 }];
      const bare = await talk(kind, without, steps, { token: 'denied' });
      const tracked = await talk(kind, withModule, steps, { token: 'denied', headers: { 'X-Request-ID': connectionId } });
      expect(tracked).toEqual(bare);
      expect(JSON.stringify(bare)).toContain('Forbidden resource');
      const events = await capture.waitFor((all) =>
        all.some((e) => e.event === 'api_error' && e.properties.request_id === `${connectionId}:1`),
      );
      const request = events.filter((e) => e.event === 'api_request' && e.properties.request_id === `${connectionId}:1`);
      expect(request).toHaveLength(1);
      expect(request[0].properties).toMatchObject({ endpoint: 'ws:echo', status_code: 403, success: false });
      expect(capture.eventsNamed('api_error', (e) => e.properties.request_id === `${connectionId}:1`)).toHaveLength(1);
    });

    it("getRequestContext() inside a handler is the message's: its request id, the handshake's session, the user", async () => {
      const connectionId = fresh(`${kind}-${adapter}-ctx`);
      const label = fresh('context');
      const headers = { 'X-Request-ID': connectionId, 'X-POSTHOG-SESSION-ID': `session-${connectionId}` };
      await talk(
        kind,
        withModule,
        [
          { event: 'whoami', expect: 1 },
          { event: 'context', data: label, expect: 1 },
        ],
        { headers, token: 'carol' },
      );
      expect(seenContexts.get(label)).toMatchObject({
        requestId: `${connectionId}:2`,
        sessionId: `session-${connectionId}`,
        userId: 'user-carol',
        distinctId: 'user-carol',
      });
      // Without the module there is no context, and the same answer.
      const bareLabel = fresh('context-bare');
      await talk(kind, without, [{ event: 'context', data: bareLabel, expect: 1 }]);
      expect(seenContexts.has(bareLabel)).toBe(true);
      expect(seenContexts.get(bareLabel)).toBeUndefined();
    });

    it("ids from socket.io's auth or the query when the client cannot send headers (a browser)", async () => {
      const connectionId = fresh(`${kind}-${adapter}-query`);
      const port = portOf(withModule);
      const distinct = randomUUID(); // an anonymous visitor's id as posthog-js makes it
      const ids = `requestId=${connectionId}&posthogSessionId=s-${connectionId}&posthogDistinctId=${distinct}`;
      if (kind === 'socket.io') {
        const socket = io(`http://127.0.0.1:${port}`, {
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
          auth: { requestId: connectionId, posthogSessionId: `s-${connectionId}`, posthogDistinctId: distinct },
        });
        try {
          await new Promise<void>((resolve, reject) => (socket.once('connect', () => resolve()), socket.once('connect_error', reject)));
          expect(await socket.emitWithAck('sum', [1, 1])).toBe(2);
        } finally {
          socket.disconnect();
        }
      } else {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/?${ids}`);
        try {
          const answer = new Promise<string>((resolve) => socket.once('message', (frame) => resolve(frame.toString())));
          await new Promise<void>((resolve, reject) => (socket.once('open', () => resolve()), socket.once('error', reject)));
          socket.send(JSON.stringify({ event: 'sum', data: [1, 1] }));
          expect(await answer).toBe('2');
        } finally {
          socket.terminate();
        }
      }
      const events = await capture.waitFor((all) =>
        all.some((e) => e.event === 'api_request' && e.properties.request_id === `${connectionId}:1`),
      );
      const event = events.find((e) => e.event === 'api_request' && e.properties.request_id === `${connectionId}:1`)!;
      expect(event.properties).toMatchObject({ endpoint: 'ws:sum', $session_id: `s-${connectionId}`, user_id: 'anonymous' });
      expect(event.distinct_id).toBe(distinct);
      expect(event.properties.$process_person_profile).toBe(false);
    });
  });

  it('an idle socket.io client on HTTP long-polling makes no events', async () => {
    const app = await bootApp(adapter, shapeFor('socket.io'), sendingTo(capture.url));
    try {
      const before = capture.events.length;
      const socket = io(`http://127.0.0.1:${portOf(app)}`, { transports: ['polling'], reconnection: false, forceNew: true });
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', () => resolve());
          socket.once('connect_error', reject);
        });
        // A message over polling is still one event; the polling requests around it are none.
        const answer = await socket.emitWithAck('sum', [2, 2]);
        expect(answer).toBe(4);
        await new Promise((done) => setTimeout(done, 2000));
      } finally {
        socket.disconnect();
      }
      await capture.waitFor((all) => all.slice(before).some((e) => e.properties.endpoint === 'ws:sum'));
      await new Promise((done) => setTimeout(done, 200));
      const after = capture.events.slice(before);
      expect(
        after.filter((e) => e.properties.method !== 'WS').map((e) => `${e.event} ${e.properties.method} ${e.properties.endpoint}`),
      ).toEqual([]);
      expect(after.filter((e) => e.event === 'api_request' && e.properties.endpoint === 'ws:sum')).toHaveLength(1);
      // The app's other HTTP requests are still recorded.
      const id = fresh('after-polling');
      await ask(app, { path: '/nothing-here', headers: { 'X-Request-ID': id } });
      await capture.waitFor((all) => all.some((e) => e.event === 'api_request' && e.properties.request_id === id));
      expect(capture.eventsNamed('api_request', (e) => e.properties.request_id === id)).toHaveLength(1);
    } finally {
      await app.close();
    }
  });

  it('socket.io under a custom path: polling left out too; with captureSocketIoPolling its requests are recorded', async () => {
    const quiet = await bootApp(adapter, { providers: [RealtimeGateway] }, sendingTo(capture.url));
    const noisy = await bootApp(adapter, { providers: [RealtimeGateway] }, sendingTo(capture.url, { captureSocketIoPolling: true }));
    try {
      const pollingEvents = async (app: INestApplication, requestId: string) => {
        const socket = io(`http://127.0.0.1:${portOf(app)}`, {
          path: '/realtime',
          transports: ['polling'],
          reconnection: false,
          forceNew: true,
          extraHeaders: { 'X-Request-ID': requestId },
        });
        try {
          await new Promise<void>((resolve, reject) => (socket.once('connect', () => resolve()), socket.once('connect_error', reject)));
          expect(await socket.emitWithAck('sum', [3, 4])).toBe(7);
        } finally {
          socket.disconnect();
        }
        await capture.waitFor((all) => all.some((e) => e.properties.request_id === `${requestId}:1`));
        await new Promise((done) => setTimeout(done, 300));
        // Each polling request carries the handshake's headers, hence its X-Request-ID.
        return capture.events.filter((e) => e.event === 'api_request' && e.properties.request_id === requestId);
      };
      expect(await pollingEvents(quiet, fresh('custom-path-quiet'))).toEqual([]);
      const recorded = await pollingEvents(noisy, fresh('custom-path-noisy'));
      expect(recorded.length).toBeGreaterThan(0);
      expect(recorded.every((e) => e.properties.endpoint === '(unmatched)')).toBe(true);
    } finally {
      await quiet.close();
      await noisy.close();
    }
  });

  it.each(KINDS)("%s: the handshake's traceparent is continued by every message", async (kind) => {
    const app = await bootApp(adapter, shapeFor(kind), sendingTo(capture.url));
    try {
      const connectionId = fresh(`${kind}-${adapter}-trace`);
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const parent = '00f067aa0ba902b7';
      const steps: Step[] = [
        { event: 'sum', data: [1], expect: 1, ack: true },
        { event: 'echo', data: 1, expect: 1 },
      ];
      await talk(kind, app, steps, { headers: { 'X-Request-ID': connectionId, traceparent: `00-${traceId}-${parent}-01` } });
      const mine = (e: CapturedEvent) => e.event === 'api_request' && String(e.properties.request_id).startsWith(`${connectionId}:`);
      const events = (await capture.waitFor((all) => all.filter(mine).length >= 2)).filter(mine);
      expect(events).toHaveLength(2);
      for (const e of events) expect(e.properties).toMatchObject({ trace_id: traceId, parent_span_id: parent });
      expect(events[0].properties.span_id).not.toBe(events[1].properties.span_id);
    } finally {
      await app.close();
    }
  });

  it.each(KINDS)("%s: Nest's own log lines for the gateway's errors are the same with and without the module", async (kind) => {
    // Nest's logger is process-wide: one app at a time, each with its own recorder.
    const logsOf = async (telemetry?: TelemetryModuleOptions) => {
      const logger = new RecordingLogger();
      const shape = shapeFor(kind);
      const app = await bootApp(adapter, { ...shape, setup: (a) => (a.useLogger(logger), shape.setup?.(a)) }, telemetry);
      try {
        logger.entries.length = 0; // the boot's own lines
        await talk(kind, app, conversation('logged'));
      } finally {
        await app.close();
      }
      return logger.entries.filter(
        (e) => !/^(NestApplication|InstanceLoader|RoutesResolver|RouterExplorer|WebSocketsController|NestFactory)$/.test(e.context),
      );
    };
    const bare = await logsOf();
    const tracked = await logsOf(sendingTo(capture.url));
    expect(tracked).toEqual(bare);
    expect(bare.map((e) => e.message)).toEqual(expect.arrayContaining(['Error: boom logged', 'TypeError: async boom logged']));
  });

  it.each(KINDS)('%s: a request-scoped gateway answers the same, and its messages are recorded', async (kind) => {
    const shape = (): AppShape => ({ providers: [ScopedGateway, PerConnection], setup: shapeFor(kind).setup });
    const bareApp = await bootApp(adapter, shape());
    const app = await bootApp(adapter, shape(), sendingTo(capture.url));
    try {
      const steps: Step[] = [
        { event: 'scoped', data: {}, expect: 1 },
        { event: 'scoped', data: { fail: true }, expect: 1 },
      ];
      const connectionId = fresh(`${kind}-${adapter}-scoped`);
      const bare = await talk(kind, bareApp, steps);
      const tracked = await talk(kind, app, steps, { headers: { 'X-Request-ID': connectionId } });
      expect(tracked).toEqual(bare);
      expect(bare).toHaveLength(2);
      const mine = (e: CapturedEvent) => String(e.properties.request_id).startsWith(`${connectionId}:`);
      await capture.waitFor((all) => all.filter((e) => mine(e) && (e.event === 'api_request' || e.event === 'api_error')).length >= 3);
      const requests = capture.eventsNamed('api_request', mine);
      expect(requests.map((e) => [e.properties.endpoint, e.properties.status_code]).sort()).toEqual([
        ['ws:scoped', 200],
        ['ws:scoped', 500],
      ]);
      expect(capture.eventsNamed('api_error', mine)).toHaveLength(1);
    } finally {
      await app.close();
      await bareApp.close();
    }
  });

  it('captureWebSockets: false: the same answers, no events for messages', async () => {
    const app = await bootApp(adapter, shapeFor('socket.io'), sendingTo(capture.url, { captureWebSockets: false }));
    try {
      const connectionId = fresh(`off-${adapter}`);
      const label = fresh('off');
      const received = await talk(
        'socket.io',
        app,
        [
          { event: 'sum', data: [5, 5], expect: 1, ack: true },
          { event: 'boom', data: { label }, expect: 1 },
          { event: 'context', data: label, expect: 1 },
        ],
        { headers: { 'X-Request-ID': connectionId } },
      );
      expect(received).toEqual([
        ['ack', 'sum', 10],
        ['event', 'exception', { status: 'error', message: 'Internal server error', cause: { pattern: 'boom', data: { label } } }],
        ['event', 'context', 'ok'],
      ]);
      expect(seenContexts.get(label)).toBeUndefined();
      // The HTTP side still works and is what flushes: a request after the messages arrives, theirs never do.
      const id = fresh('off-http');
      await ask(app, { path: '/nothing-here', headers: { 'X-Request-ID': id } });
      await capture.waitFor((all) => all.some((e) => e.properties.request_id === id));
      expect(capture.events.filter((e) => String(e.properties.request_id).startsWith(`${connectionId}:`))).toEqual([]);
    } finally {
      await app.close();
    }
  });
});

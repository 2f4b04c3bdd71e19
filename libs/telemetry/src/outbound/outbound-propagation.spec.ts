import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SharedPostHog } from '../outlets/posthog-client.js';
import { Operations } from '../request/operations.js';
import { registerContextSource } from '../request/request-context.js';
import { resolveTelemetryOptions, type TelemetryModuleOptions } from '../telemetry.options.js';
import { OutboundPropagation } from './outbound-propagation.js';

/** The module's outbound propagation with a real client (node:http, fetch) against a loopback server. */
describe('OutboundPropagation', () => {
  const received: { url: string; headers: IncomingHttpHeaders }[] = [];
  let server: Server;
  let base: string;
  const posthog = new SharedPostHog('phc_local_mode', { host: 'http://127.0.0.1:9', disabled: true });
  let unregister: () => void;

  beforeAll(async () => {
    unregister = registerContextSource(posthog);
    server = createServer((req, res) => {
      received.push({ url: req.url ?? '', headers: req.headers });
      res.setHeader('Connection', 'close');
      res.end('ok');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    unregister();
    await posthog.shutdown();
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  });

  function setUp(options: TelemetryModuleOptions, sentry?: object) {
    const resolved = resolveTelemetryOptions({ enabled: true, ...options });
    const operations = new Operations(resolved, posthog, { finish: () => undefined } as never, { report: () => undefined } as never);
    const propagation = new OutboundPropagation(resolved, posthog, { report: () => undefined } as never, sentry as never);
    propagation.onModuleInit();
    return { operations, propagation };
  }

  const get = (url: string) =>
    new Promise<void>((done, fail) =>
      request(url, (res) => res.resume().on('end', done))
        .on('error', fail)
        .end(),
    );
  const last = () => received[received.length - 1].headers;

  it("adds the operation's id and traceparent inside an operation only, and stops at shutdown", async () => {
    const { operations, propagation } = setUp({ requestIdHeader: 'x-correlation-id' });
    try {
      await get(`${base}/outside`);
      expect(last()['x-correlation-id']).toBeUndefined();
      const operation = operations.create({ method: 'GET', requestId: 'op-1' });
      await operations.run(operation, () => get(`${base}/inside`));
      expect(last()).toMatchObject({ 'x-correlation-id': 'op-1', traceparent: `00-${operation.traceId}-${operation.spanId}-01` });
      await operations.run(operation, async () => (await fetch(`${base}/fetched`)).text());
      expect(last()).toMatchObject({ 'x-correlation-id': 'op-1', traceparent: `00-${operation.traceId}-${operation.spanId}-01` });
    } finally {
      propagation.onApplicationShutdown();
    }
    const operation = operations.create({ method: 'GET', requestId: 'op-2' });
    await operations.run(operation, () => get(`${base}/after-shutdown`));
    expect(last()['x-correlation-id']).toBeUndefined();
  });

  it("never to the module's PostHog host, Sentry's DSN host, or a Sentry envelope endpoint", async () => {
    const port = new URL(base).port;
    const sentry = { getClient: () => ({ getDsn: () => ({ protocol: 'http', host: '127.0.0.1', port }) }) };
    for (const [options, dsn] of [
      [{ host: base }, undefined],
      [{}, sentry],
    ] as [TelemetryModuleOptions, object | undefined][]) {
      const { operations, propagation } = setUp(options, dsn);
      try {
        await operations.run(operations.create({ method: 'GET', requestId: 'op-3' }), () => get(`${base}/batch/`));
        expect(last()['x-request-id']).toBeUndefined();
        expect(last().traceparent).toBeUndefined();
      } finally {
        propagation.onApplicationShutdown();
      }
    }
    const { operations, propagation } = setUp({});
    try {
      await operations.run(operations.create({ method: 'GET', requestId: 'op-4' }), () => get(`${base}/api/42/envelope/?sentry_key=k`));
      expect(last()['x-request-id']).toBeUndefined();
      await operations.run(operations.create({ method: 'GET', requestId: 'op-5' }), () => get(`${base}/api/42/other/`));
      expect(last()['x-request-id']).toBe('op-5');
    } finally {
      propagation.onApplicationShutdown();
    }
  });

  it('does nothing with `propagate: false`', async () => {
    const { operations, propagation } = setUp({ propagate: false });
    try {
      await operations.run(operations.create({ method: 'GET', requestId: 'op-6' }), () => get(`${base}/off`));
      expect(last()['x-request-id']).toBeUndefined();
      expect(last().traceparent).toBeUndefined();
    } finally {
      propagation.onApplicationShutdown();
    }
  });
});

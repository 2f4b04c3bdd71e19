import { SharedPostHog } from '../outlets/posthog-client.js';
import { Operations } from '../request/operations.js';
import { registerContextSource } from '../request/request-context.js';
import { resolveTelemetryOptions } from '../telemetry.options.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

/** The trace of operations as `Operations.create` decides it (the transports' one entry point). */
describe('Operations: trace context', () => {
  const posthog = new SharedPostHog('phc_local_mode', { host: 'http://127.0.0.1:9', disabled: true });
  let unregister: () => void;
  const make = (sentry?: object) =>
    new Operations(
      resolveTelemetryOptions({ enabled: true }),
      posthog,
      { finish: () => undefined } as never,
      { report: () => undefined } as never,
      sentry as never,
    );
  beforeAll(() => (unregister = registerContextSource(posthog)));
  afterAll(async () => {
    unregister();
    await posthog.shutdown();
  });

  it('continues a valid incoming traceparent, and starts a new trace otherwise', () => {
    const operations = make();
    const continued = operations.create({ method: 'GET', traceparent: `00-${TRACE}-${SPAN}-00` });
    expect(continued).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, traceFlags: '00' });
    expect(continued.spanId).toMatch(/^[0-9a-f]{16}$/);
    const started = operations.create({ method: 'GET', traceparent: 'garbage' });
    expect(started.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(started.traceId).not.toBe(TRACE);
    expect(started).toMatchObject({ parentSpanId: undefined, traceFlags: '01' });
  });

  it('inside another operation, continues its trace with its span as the parent, unless the transport brings a traceparent; standalone shares nothing', () => {
    const operations = make();
    const outer = operations.create({ method: 'POST', traceparent: `00-${TRACE}-${SPAN}-01` });
    operations.run(outer, () => {
      const inner = operations.create({ method: 'POST', endpoint: 'graphql:query Q' });
      expect(inner).toMatchObject({ traceId: TRACE, parentSpanId: outer.spanId, traceFlags: '01', requestId: outer.requestId });
      const own = operations.create({ method: 'RPC', traceparent: `00-${'c'.repeat(32)}-${'d'.repeat(16)}-01` });
      expect(own).toMatchObject({ traceId: 'c'.repeat(32), parentSpanId: 'd'.repeat(16) });
      const standalone = operations.create({ method: 'GET', standalone: true });
      expect(standalone.traceId).not.toBe(TRACE);
    });
  });

  it("takes the trace of Sentry's active span instead of starting one, and the caller's over it", () => {
    const span = { spanContext: () => ({ traceId: 'e'.repeat(32), spanId: 'f'.repeat(16), traceFlags: 1 }) };
    const operations = make({ getActiveSpan: () => span });
    expect(operations.create({ method: 'GET' })).toMatchObject({ traceId: 'e'.repeat(32), parentSpanId: 'f'.repeat(16), traceFlags: '01' });
    expect(operations.create({ method: 'GET', traceparent: `00-${TRACE}-${SPAN}-00` })).toMatchObject({
      traceId: TRACE,
      parentSpanId: SPAN,
      traceFlags: '00',
    });
  });

  it("takes the tracer's trace where the route is reached, for a trace it started itself only", () => {
    let span: object | undefined;
    const operations = make({ getActiveSpan: () => span });
    const started = operations.create({ method: 'GET' });
    const continued = operations.create({ method: 'GET', traceparent: `00-${TRACE}-${SPAN}-01` });
    const own = started.traceId;
    span = { spanContext: () => ({ traceId: 'e'.repeat(32), spanId: 'f'.repeat(16), traceFlags: 0 }) };
    started.matchRoute('/items/:id', {});
    continued.matchRoute('/items/:id', {});
    expect(own).not.toBe('e'.repeat(32));
    expect(started).toMatchObject({ traceId: 'e'.repeat(32), parentSpanId: 'f'.repeat(16), traceFlags: '00' });
    expect(continued).toMatchObject({ traceId: TRACE, parentSpanId: SPAN });
    // Once only: a later span changes nothing.
    span = { spanContext: () => ({ traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: 1 }) };
    started.matchRoute('/items/:id', {});
    expect(started.traceId).toBe('e'.repeat(32));
  });
});

import { activeTracerSpan } from './active-trace.js';
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent, traceparentOf } from './trace-context.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parseTraceparent', () => {
  it.each<[string, string, object]>([
    ['a sampled one', `00-${TRACE}-${SPAN}-01`, { traceId: TRACE, parentSpanId: SPAN, flags: '01' }],
    ['an unsampled one', `00-${TRACE}-${SPAN}-00`, { traceId: TRACE, parentSpanId: SPAN, flags: '00' }],
    ['upper case, trimmed', ` 00-${TRACE.toUpperCase()}-${SPAN}-01 `, { traceId: TRACE, parentSpanId: SPAN, flags: '01' }],
    ['a later version with more fields', `01-${TRACE}-${SPAN}-01-what-comes`, { traceId: TRACE, parentSpanId: SPAN, flags: '01' }],
  ])('reads %s', (_label, header, expected) => {
    expect(parseTraceparent(header)).toEqual(expected);
  });

  it.each<[string, unknown]>([
    ['missing', undefined],
    ['repeated (Node gives an array)', [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`]],
    ['joined by a comma', `00-${TRACE}-${SPAN}-01, 00-${TRACE}-${SPAN}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['an all-zero span id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with a fifth field', `00-${TRACE}-${SPAN}-01-extra`],
    ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['not hex', `00-${'g'.repeat(32)}-${SPAN}-01`],
    ['huge', `00-${TRACE}-${SPAN}-01-${'x'.repeat(1000)}`],
  ])('refuses %s', (_label, header) => {
    expect(parseTraceparent(header)).toBeUndefined();
  });
});

describe('ids and formatting', () => {
  it('makes non-zero ids of the right length, each time new', () => {
    const traces = new Set(Array.from({ length: 50 }, newTraceId));
    expect(traces.size).toBe(50);
    for (const id of traces) expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(newSpanId()).toMatch(/^[0-9a-f]{16}$/);
  });

  it('formats the traceparent of a call an operation makes', () => {
    expect(formatTraceparent(TRACE, SPAN, '01')).toBe(`00-${TRACE}-${SPAN}-01`);
    expect(traceparentOf({ traceId: TRACE, spanId: SPAN, traceFlags: '00' })).toBe(`00-${TRACE}-${SPAN}-00`);
  });
});

describe('activeTracerSpan', () => {
  const spanOf = (context: object) => ({ spanContext: () => context });

  it("reads Sentry's active span", () => {
    const sentry = { getActiveSpan: () => spanOf({ traceId: TRACE, spanId: SPAN, traceFlags: 1 }) };
    expect(activeTracerSpan(sentry)).toEqual({ traceId: TRACE, parentSpanId: SPAN, flags: '01' });
  });

  it('reads the OpenTelemetry global API when Sentry has no span, and ignores an invalid span', () => {
    const key = Symbol.for('opentelemetry.js.api.1');
    const global = globalThis as Record<symbol, unknown>;
    const before = global[key];
    let active: unknown = spanOf({ traceId: TRACE, spanId: SPAN, traceFlags: 0 });
    global[key] = {
      context: { active: () => ({ getValue: (k: symbol) => (k === Symbol.for('OpenTelemetry Context Key SPAN') ? active : undefined) }) },
    };
    try {
      expect(activeTracerSpan({ getActiveSpan: () => undefined })).toEqual({ traceId: TRACE, parentSpanId: SPAN, flags: '00' });
      active = spanOf({ traceId: '0'.repeat(32), spanId: SPAN });
      expect(activeTracerSpan(undefined)).toBeUndefined();
    } finally {
      global[key] = before;
    }
  });

  it('never throws', () => {
    expect(
      activeTracerSpan({
        getActiveSpan: () => {
          throw new Error('broken');
        },
      }),
    ).toBeUndefined();
  });
});

describe('trace properties of events', () => {
  it('puts trace_id, span_id and parent_span_id on every event of an operation, only when known', async () => {
    const { apiRequestEvent, apiErrorEvent } = await import('../events/telemetry-events.js');
    const identity = { distinctId: 'd', userId: 'anonymous', environment: 'test', personless: true, requestId: 'r' };
    const fields = { endpoint: '/x', method: 'GET', statusCode: 200, durationMs: 1 };
    expect(apiRequestEvent({ ...identity, traceId: TRACE, spanId: SPAN, parentSpanId: 'c'.repeat(16) }, fields).properties).toMatchObject({
      trace_id: TRACE,
      span_id: SPAN,
      parent_span_id: 'c'.repeat(16),
    });
    const started = apiErrorEvent(
      { ...identity, traceId: TRACE, spanId: SPAN },
      { ...fields, statusCode: 500, category: 'x', details: { message: 'm', exceptionType: 'Error', traceback: '' } as never },
    );
    expect(started.properties).toMatchObject({ trace_id: TRACE, span_id: SPAN });
    expect(started.properties).not.toHaveProperty('parent_span_id');
    const outside = apiRequestEvent(identity, fields).properties;
    for (const key of ['trace_id', 'span_id', 'parent_span_id']) expect(outside).not.toHaveProperty(key);
  });
});

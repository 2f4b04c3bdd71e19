import { isSpanId, isTraceId, type TraceStart } from './trace-context.js';

/** The few `@sentry/node` functions read here (optional: older or trimmed SDKs lack some). */
export interface SentryTraceApi {
  getActiveSpan?(): unknown;
}

/** What an OpenTelemetry span (and a Sentry span, which is one) says of itself. */
interface SpanContextLike {
  traceId?: unknown;
  spanId?: unknown;
  traceFlags?: unknown;
}

/** The global `@opentelemetry/api` 1.x keeps its registered context manager under (no import: the app may not have it). */
const OTEL_API = Symbol.for('opentelemetry.js.api.1');
/** The context key of the active span (`@opentelemetry/api`'s `SPAN_KEY`). */
const OTEL_SPAN_KEY = Symbol.for('OpenTelemetry Context Key SPAN');

/** What is read of that global API: its context manager's `active()`. */
interface OtelGlobal {
  context?: { active?: unknown };
}

function fromSpanContext(context: SpanContextLike | undefined): TraceStart | undefined {
  if (!context || !isTraceId(context.traceId)) return undefined;
  const flags = typeof context.traceFlags === 'number' && (context.traceFlags & 1) === 1 ? '01' : '00';
  return { traceId: context.traceId, parentSpanId: isSpanId(context.spanId) ? context.spanId : undefined, flags };
}

function spanContextOf(span: unknown): SpanContextLike | undefined {
  const read = (span as { spanContext?: () => SpanContextLike } | undefined)?.spanContext;
  return typeof read === 'function' ? read.call(span) : undefined;
}

/** Sentry's active span: its trace, with the span as the operation's parent. */
function sentrySpan(sentry: SentryTraceApi | undefined): TraceStart | undefined {
  if (typeof sentry?.getActiveSpan !== 'function') return undefined;
  return fromSpanContext(spanContextOf(sentry.getActiveSpan()));
}

/** The active span of the app's OpenTelemetry (the global API, duck-typed), if any. */
function otelSpan(): TraceStart | undefined {
  const api = (globalThis as Record<symbol, OtelGlobal | undefined>)[OTEL_API];
  const active = api?.context?.active;
  if (typeof active !== 'function') return undefined;
  const context: unknown = active.call(api?.context);
  const getValue = (context as { getValue?: unknown } | null | undefined)?.getValue;
  if (typeof getValue !== 'function') return undefined;
  return fromSpanContext(spanContextOf(getValue.call(context, OTEL_SPAN_KEY)));
}

/**
 * The span a tracer of the app's has active where an operation enters:
 * Sentry's, else OpenTelemetry's. An operation with no caller's trace takes
 * theirs rather than starting one, so PostHog events, Sentry errors and OTel
 * spans share one trace id. Never throws.
 */
export function activeTracerSpan(sentry: SentryTraceApi | undefined): TraceStart | undefined {
  try {
    return sentrySpan(sentry) ?? otelSpan();
  } catch {
    return undefined;
  }
}

import { randomHex } from '../request/random-ids.js';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the trace an
 * operation belongs to, where it comes from, and its own span.
 */
export interface TraceStart {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** The caller's span (16 hex digits): an incoming `traceparent`'s, or the enclosing operation's. */
  parentSpanId?: string;
  /** The trace flags, two hex digits (`01`: sampled). */
  flags: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;
const ZEROS = /^0+$/;

/** A usable trace id: 32 hex digits, not all zero. */
export function isTraceId(value: unknown): value is string {
  return typeof value === 'string' && TRACE_ID.test(value) && !ZEROS.test(value);
}

/** A usable span id: 16 hex digits, not all zero. */
export function isSpanId(value: unknown): value is string {
  return typeof value === 'string' && SPAN_ID.test(value) && !ZEROS.test(value);
}

/**
 * An incoming `traceparent` header, or `undefined` when it is missing or
 * invalid (the spec's rules: version `ff` refused, version `00` exactly four
 * fields, ids not all zero; a repeated header is refused). Never throws.
 */
export function parseTraceparent(value: unknown): TraceStart | undefined {
  if (typeof value !== 'string' || value.length > 512) return undefined;
  const match = TRACEPARENT.exec(value.trim().toLowerCase());
  if (!match) return undefined;
  const [, version, traceId, parentSpanId, flags, rest] = match;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (!isTraceId(traceId) || !isSpanId(parentSpanId)) return undefined;
  return { traceId, parentSpanId, flags };
}

/** `00-<trace id>-<span id>-<flags>`. */
export function formatTraceparent(traceId: string, spanId: string, flags: string): string {
  return `00-${traceId}-${spanId}-${flags}`;
}

/** A new trace id (32 hex digits). */
export const newTraceId = (): string => randomHex(16);
/** A new span id (16 hex digits). */
export const newSpanId = (): string => randomHex(8);

/** The `traceparent` of a call an operation makes: its trace, its own span as the parent, its flags. */
export function traceparentOf(operation: { traceId: string; spanId: string; traceFlags: string }): string {
  return formatTraceparent(operation.traceId, operation.spanId, operation.traceFlags);
}

/** A new trace, sampled: the module starts one where no caller and no tracer did. */
export function newTrace(): TraceStart {
  return { traceId: newTraceId(), flags: '01' };
}

import type { Operation } from '../request/operation.js';
import { traceparentOf } from '../trace/trace-context.js';

/**
 * The fields that carry an operation across an RPC hop, on the wire: NATS
 * headers, or the packet's top-level `metadata` (Nest's `PacketMetadata`,
 * which the TCP and Redis servers hand to the handler's context as
 * `ctx.getMetadata()`). Fixed names, the same as the HTTP headers a frontend
 * sends, so both sides agree without configuration. The message's `data` is
 * never touched.
 */
export const RPC_REQUEST_ID = 'x-request-id';
export const RPC_SESSION_ID = 'x-posthog-session-id';
export const RPC_DISTINCT_ID = 'x-posthog-distinct-id';
/** W3C trace context: the caller's trace and span (see `outgoingFields`), continued on the other side. */
export const RPC_TRACEPARENT = 'traceparent';

/** Longest value read from a field; anything longer is ignored. */
const MAX_FIELD = 512;

/**
 * What the caller's operation sends along with a message. The operation's
 * correlation id always; its session and distinct id when it has them (a
 * user's, or the frontend's: an anonymous operation's random id names nobody
 * and stays home); and the W3C
 * `traceparent` of its trace, the operation's span as the parent.
 */
export function outgoingFields(operation: Operation): Record<string, string> {
  const fields: Record<string, string> = { [RPC_REQUEST_ID]: operation.requestId };
  if (operation.sessionId !== undefined) fields[RPC_SESSION_ID] = operation.sessionId;
  if (operation.user !== undefined || operation.frontendDistinctId !== undefined) fields[RPC_DISTINCT_ID] = operation.distinctId;
  fields[RPC_TRACEPARENT] = traceparentOf(operation);
  return fields;
}

/** The caller's fields as a handler's context carries them. */
export interface IncomingFields {
  requestId?: string;
  sessionId?: string;
  distinctId?: string;
  traceparent?: string;
}

interface RpcContextLike {
  getMetadata?(): unknown;
  getHeaders?(): unknown;
}

/** A field of the context: `getMetadata()` (TCP, Redis), else `getHeaders().get()` (NATS). Never throws. */
function fieldOf(context: RpcContextLike, name: string): string | undefined {
  try {
    const metadata = typeof context.getMetadata === 'function' ? context.getMetadata() : undefined;
    if (metadata !== null && typeof metadata === 'object') {
      const value = (metadata as Record<string, unknown>)[name];
      if (typeof value === 'string') return value.length > MAX_FIELD ? undefined : value;
    }
    const headers = typeof context.getHeaders === 'function' ? context.getHeaders() : undefined;
    const get = (headers as { get?: unknown } | undefined)?.get;
    if (typeof get === 'function') {
      const value: unknown = get.call(headers, name);
      if (typeof value === 'string' && value !== '') return value.length > MAX_FIELD ? undefined : value;
    }
  } catch {
    /* a context that cannot be read carries nothing */
  }
  return undefined;
}

/** Reads the caller's fields off a handler's RPC context (`TcpContext`, `RedisContext`, `NatsContext`…). */
export function incomingFields(context: unknown): IncomingFields {
  if (context === null || typeof context !== 'object') return {};
  const ctx = context as RpcContextLike;
  return {
    requestId: fieldOf(ctx, RPC_REQUEST_ID),
    sessionId: fieldOf(ctx, RPC_SESSION_ID),
    distinctId: fieldOf(ctx, RPC_DISTINCT_ID),
    traceparent: fieldOf(ctx, RPC_TRACEPARENT),
  };
}

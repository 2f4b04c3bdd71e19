import { AsyncLocalStorage } from 'node:async_hooks';
import type { PostHog } from 'posthog-node';
import type { Operation } from './operation.js';
import { OPERATION } from './request-context.js';

/**
 * `distinctId` is an own, enumerable accessor: posthog-node copies the context
 * (`{ ...context }`) for `captureException`, and the copy must hold the
 * request's distinct id. One shared getter keeps every scope on one hidden
 * class (a getter made per request would give each its own).
 */
const DISTINCT_ID: PropertyDescriptor = {
  enumerable: true,
  configurable: true,
  get(this: RequestScope) {
    return this[OPERATION].distinctId;
  },
};

/**
 * An operation's posthog-node context (`distinctId`, `sessionId`,
 * `properties`), made once per operation: posthog-node reads it for the app's
 * own captures, and the module finds the operation on it. The properties are
 * built on first read: most requests never capture anything of their own.
 */
export class RequestScope {
  declare readonly distinctId: string;
  readonly [OPERATION]: Operation;
  readonly sessionId: string | undefined;
  #environment: string;
  #properties: Record<PropertyKey, unknown> | undefined = undefined;

  constructor(operation: Operation, environment: string) {
    this[OPERATION] = operation;
    Object.defineProperty(this, 'distinctId', DISTINCT_ID);
    this.sessionId = operation.sessionId;
    this.#environment = environment;
  }

  /** `request_id`, `environment`, `trace_id`, `span_id` (and `parent_span_id`), and the operation under a symbol key. */
  get properties(): Record<string, unknown> {
    if (this.#properties === undefined) {
      const operation = this[OPERATION];
      const properties: Record<PropertyKey, unknown> = {
        request_id: operation.requestId,
        environment: this.#environment,
        trace_id: operation.traceId,
        span_id: operation.spanId,
      };
      if (operation.parentSpanId !== undefined) properties.parent_span_id = operation.parentSpanId;
      properties[OPERATION] = operation;
      this.#properties = properties;
    }
    return this.#properties as Record<string, unknown>;
  }

  set properties(properties: Record<string, unknown>) {
    this.#properties = properties;
  }
}

/** posthog-node's registry of context listeners (its OpenTelemetry span processor): they are told of each context entered. */
const CONTEXT_LISTENERS = Symbol.for('posthog-node.context-listeners');

/**
 * The AsyncLocalStorage posthog-node keeps its context in, when the scope can
 * be stored there as it is: running in it directly spares a copy of the
 * context per request. `undefined` (another posthog-node layout, or listeners
 * to tell): its public `withContext` is used instead.
 */
export function scopeStorage(posthog: PostHog): AsyncLocalStorage<unknown> | undefined {
  const storage = (posthog as unknown as { context?: { storage?: unknown } }).context?.storage;
  if (!(storage instanceof AsyncLocalStorage)) return undefined;
  const listeners = (globalThis as Record<symbol, WeakMap<object, Set<unknown>> | undefined>)[CONTEXT_LISTENERS];
  return listeners?.get(posthog)?.size ? undefined : storage;
}

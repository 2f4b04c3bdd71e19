import { Operation, type TelemetryRequestContext } from './operation.js';

export type { TelemetryRequestContext } from './operation.js';

/**
 * Where an operation is kept: on the Node request object (for the code that
 * has the request), and on its posthog-node context (for the code that runs in
 * it). Never serialised.
 */
export const OPERATION = Symbol.for('nestjs-posthog-telemetry.request-state');

/** Ties an operation to the Node request it is for. */
export function attachOperation(request: object, operation: Operation): void {
  (request as Record<symbol, unknown>)[OPERATION] = operation;
}

/** The operation of a request, given the adapter's (Express, Fastify) or the raw Node request. */
export function operationOf(request: unknown): Operation | undefined {
  if (request === null || typeof request !== 'object') return undefined;
  const raw = (request as { raw?: unknown }).raw ?? request;
  const operation = (raw as Record<symbol, unknown>)[OPERATION];
  return operation instanceof Operation ? operation : undefined;
}

/**
 * The correlation id of a request (its `X-Request-ID` and its events' `request_id`), given Express's or
 * Fastify's request, Node's, or an `ExecutionContext`; `undefined` for a request the module did not see.
 * For other libraries' request-id options, e.g. nestjs-cls's `idGenerator: (req) => requestIdOf(req) ?? randomUUID()`.
 */
export function requestIdOf(request: unknown): string | undefined {
  const context = request as { switchToHttp?: () => { getRequest(): unknown } } | undefined;
  return operationOf(typeof context?.switchToHttp === 'function' ? context.switchToHttp().getRequest() : request)?.requestId;
}

/** Anything that can say which operation is running: each module's posthog-node client, whose context it rides in. */
interface ContextSource {
  getContext(): { properties?: Record<PropertyKey, unknown> } | undefined;
}
const contextSources = new Set<ContextSource>();

export function registerContextSource(source: ContextSource): () => void {
  contextSources.add(source);
  return () => contextSources.delete(source);
}

/** The operation the caller runs in, found through posthog-node's async context. */
export function currentOperation(): Operation | undefined {
  for (const source of contextSources) {
    const context = source.getContext() as ({ properties?: Record<PropertyKey, unknown> } & Record<PropertyKey, unknown>) | undefined;
    if (context === undefined) continue;
    // A request's own scope holds it; a context derived from one (the app's `withContext`) has it in its properties.
    const operation = context[OPERATION] ?? context.properties?.[OPERATION];
    if (operation instanceof Operation) return operation;
  }
  return undefined;
}

/**
 * The context of the request the caller runs in (correlation id, user, session),
 * from any code: a service, a repository, a callback. `undefined` outside requests.
 */
export function getRequestContext(): TelemetryRequestContext | undefined {
  const operation = currentOperation();
  if (!operation) return undefined;
  return {
    requestId: operation.requestId,
    sessionId: operation.sessionId,
    distinctId: operation.distinctId,
    userId: operation.userId,
    user: operation.user,
    traceId: operation.traceId,
    spanId: operation.spanId,
  };
}

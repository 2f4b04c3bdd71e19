import { ExternalExceptionsHandler } from '@nestjs/core/exceptions/external-exceptions-handler.js';
import { answeredByAppFilter, hookOnce } from '../errors/nest-hooks.js';
import type { Operation } from '../request/operation.js';

/** A GraphQL operation being tracked, found by the context object its resolvers receive. */
export interface TrackedGraphqlOperation {
  readonly operation: Operation;
  /**
   * An error of the operation, as a resolver threw it; `answered`: one of the app's filters takes it; `path`:
   * the field's (`info.path`), where the filter's answer, if an error, shows in the result.
   */
  noteError(error: unknown, answered?: boolean, path?: string): void;
}

/**
 * Every copy of the module in the process shares one registry (the hooks below are installed once per
 * process): the context of each GraphQL operation (Apollo's `contextValue`, Mercurius's `context`, one
 * per operation, batched ones included) to its tracking. A WeakMap: nothing is added to the app's context.
 */
const REGISTRY = Symbol.for('nestjs-posthog-telemetry.graphql-operations');
const registry: WeakMap<object, TrackedGraphqlOperation> = ((globalThis as Record<symbol, unknown>)[REGISTRY] ??= new WeakMap()) as WeakMap<
  object,
  TrackedGraphqlOperation
>;

export function trackGraphqlContext(context: object, tracked: TrackedGraphqlOperation): void {
  registry.set(context, tracked);
}

/** The tracked operation of this very context (not of one it was made from). */
export function ownTracked(context: object): TrackedGraphqlOperation | undefined {
  return registry.get(context);
}

/** The tracked operation of a GraphQL context, or of the context it was made from (`Object.create`). */
export function trackedByContext(context: unknown): TrackedGraphqlOperation | undefined {
  let current = context;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth++) {
    const tracked = registry.get(current as object);
    if (tracked) return tracked;
    current = Object.getPrototypeOf(current);
  }
  return undefined;
}

/** A field's path as a key: `info.path` (graphql-js's linked list) or a result error's `path` (an array). */
export function fieldPathOf(source: unknown): string | undefined {
  const path = (source as { path?: unknown } | undefined)?.path;
  if (Array.isArray(path)) return path.join('.');
  const keys: unknown[] = [];
  for (
    let current = path as { key?: unknown; prev?: unknown } | undefined;
    current && keys.length < 100;
    current = current.prev as typeof current
  ) {
    keys.unshift(current.key);
  }
  return keys.length > 0 ? keys.join('.') : undefined;
}

/** What is read of the `ArgumentsHost` Nest hands its exception handler. */
interface HandlerHost {
  getType?(): unknown;
  getArgByIndex?(index: number): unknown;
}

/**
 * Where the module sees resolver errors, inside Nest, changing nothing of what happens there:
 * `ExternalExceptionsHandler.next`, where every resolver error (a thrown `Error`, an `HttpException`
 * from the resolver or a guard, a `GraphQLError`) is handed to the app's GraphQL exception filters, and
 * then to Nest's own (which logs `ERROR [ExceptionsHandler]` and rethrows): the error is noted on its
 * operation (found by the resolver's context argument), with whether one of the app's filters takes it,
 * and handed on untouched. Called after the throw, never around the resolver: the error's stack (which
 * Apollo shows in development answers) has no frame of the module's.
 *
 * Installed once per process.
 */
export function hookNestGraphqlPaths(): void {
  hookOnce(ExternalExceptionsHandler.prototype, (prototype) => {
    const next = prototype.next;
    prototype.next = function (this: { filters?: unknown }, exception: unknown, host: HandlerHost | undefined) {
      try {
        if (host?.getType?.() === 'graphql') {
          const answered = answeredByAppFilter(this.filters, exception);
          trackedByContext(host.getArgByIndex?.(2))?.noteError(
            exception,
            answered,
            answered ? fieldPathOf(host.getArgByIndex?.(3)) : undefined,
          );
        }
      } catch {
        /* the app's own handling matters more than the note */
      }
      return next.call(this, exception as never, host as never);
    } as typeof prototype.next;
  });
}

/**
 * `@SkipTelemetry()` on a resolver (or its class) that runs in a tracked GraphQL operation: no events for the
 * operation. Called where the resolver is built (http/route-hooks.ts); never throws.
 */
export function skipGraphqlOperation(context: { getArgByIndex?(index: number): unknown }): void {
  try {
    trackedByContext(context.getArgByIndex?.(2))?.operation.optOut();
  } catch {
    /* never stand between a resolver and its call */
  }
}

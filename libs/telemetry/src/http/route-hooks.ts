import { ExternalContextCreator } from '@nestjs/core/helpers/external-context-creator.js';
import { RouterExecutionContext } from '@nestjs/core/router/router-execution-context.js';
import { hookOnce } from '../errors/nest-hooks.js';
import { skipGraphqlOperation } from '../graphql/graphql-hooks.js';
import { operationOf } from '../request/request-context.js';
import { SKIP_TELEMETRY } from '../telemetry.constants.js';
import { routeTemplateOf } from './route-template.js';

/** `@SkipTelemetry()` on the handler, else on its class: read once per handler, where Nest builds it. Never throws. */
function skipped(instance: unknown, handler: unknown): boolean {
  try {
    const own: unknown = typeof handler === 'function' ? Reflect.getMetadata(SKIP_TELEMETRY, handler) : undefined;
    const type = (instance as { constructor?: unknown } | null)?.constructor;
    return (own ?? (typeof type === 'function' ? Reflect.getMetadata(SKIP_TELEMETRY, type) : undefined)) === true;
  } catch {
    return false;
  }
}

/** The route a request reached, seen with the adapter's request before any guard of the app runs. Never throws. */
function reachRoute(request: unknown, skip: boolean): void {
  try {
    const operation = operationOf(request);
    if (operation === undefined) return;
    operation.matchRoute(routeTemplateOf(request), request);
    if (skip) operation.optOut();
  } catch {
    /* never stand between a request and its route */
  }
}

/**
 * Where a request meets its route, without a guard: Nest builds one handler
 * per route (`RouterExecutionContext.create`), and the module wraps each one
 * it builds. The wrapper runs first, before the app's guards, pipes and
 * interceptors: it records the route template and `@SkipTelemetry()` (read
 * once per handler), so a request a guard rejects keeps its route. No global
 * guard means Nest runs no guard pipeline for routes that have none of their
 * own (see docs/performance.md).
 *
 * GraphQL resolvers (built by `ExternalContextCreator` for the `graphql`
 * context) marked `@SkipTelemetry()` turn their operation's events off
 * (graphql/). Installed once per process; requests the module does not track
 * pass straight through.
 */
export function hookRoutes(): void {
  hookOnce(RouterExecutionContext.prototype, (prototype) => {
    const create = prototype.create;
    prototype.create = function (this: RouterExecutionContext, ...args: Parameters<typeof create>) {
      const handler = create.apply(this, args);
      const skip = skipped(args[0], args[1]);
      // Three parameters, as Nest's own: Express tells error handlers by their arity.
      return function (req: unknown, res: unknown, next: unknown) {
        reachRoute(req, skip);
        return handler(req, res, next as () => void);
      };
    } as typeof create;
  });

  hookOnce(ExternalContextCreator.prototype, (prototype) => {
    const create = prototype.create;
    prototype.create = function (this: ExternalContextCreator, ...args: Parameters<typeof create>) {
      const target = create.apply(this, args);
      const contextType = args[8];
      if (contextType !== 'graphql' || !skipped(args[0], args[1]) || typeof target !== 'function') return target;
      // A resolver's arguments: (parent, args, context, info).
      return function (this: unknown, ...args: unknown[]) {
        skipGraphqlOperation({ getArgByIndex: (index: number) => args[index] });
        return (target as (...a: unknown[]) => unknown).apply(this, args);
      };
    } as typeof create;
  });
}

import type { Operation } from '../request/operation.js';
import { answeredByAppFilter, hookOnce } from '../errors/nest-hooks.js';
import { currentOperation } from '../request/request-context.js';
import { outgoingFields } from './rpc-correlation.js';

/** On a handler wrapper: the handler it wraps. */
const WRAPPED = Symbol.for('nestjs-posthog-telemetry.rpc-handler');

type Handler = ((...args: unknown[]) => unknown) & { isEventHandler?: boolean; extras?: unknown; next?: unknown };
type Constructor = { prototype: object } | undefined;
/** A prototype whose methods `K` are replaced in place: read as found (the package's own), written as wrappers. */
type Hookable<K extends string> = Partial<Record<K, unknown>>;
/** What is read of a NATS `MsgHdrs` (the app's headers, and those the client makes). */
interface NatsHeaders {
  has(name: string): boolean;
  keys(): Iterable<string>;
  values(name: string): Iterable<string>;
  append(name: string, value: string): void;
}

/** What one message handler call needs from the app that owns its server (rpc-entry.ts). */
export interface RpcRunner {
  run(route: unknown, isEvent: boolean, handler: Handler, thisArg: unknown, args: unknown[]): unknown;
}

/** The parts of `@nestjs/microservices` hooked, loaded by the module only when the app has the package. */
export interface MicroservicesPackage {
  Server?: Constructor;
  ClientProxy?: Constructor;
  ClientTCP?: Constructor;
  ClientRedis?: Constructor;
  ClientNats?: Constructor;
  RpcExceptionsHandler?: Constructor;
  MicroservicesModule?: Constructor;
}

/** The app (its `ModulesContainer`) each server's handlers come from. */
const owners = new WeakMap<object, object>();
/** The runner of each app with the module; a server of an app without it runs untouched. */
const runners = new WeakMap<object, RpcRunner>();
/** Operations made for messages: the RPC exception hook notes errors only on these. */
const rpcOperations = new WeakSet<Operation>();
/** Live modules that send the caller's fields along (`propagateToMicroservices`). */
let propagating = 0;

/** Registers the app whose container is `modules`; the first module of an app keeps it. Returns the way back. */
export function registerRpcApp(modules: object, runner: RpcRunner): () => void {
  if (runners.has(modules)) return () => undefined;
  runners.set(modules, runner);
  return () => {
    if (runners.get(modules) === runner) runners.delete(modules);
  };
}

/** Turns outgoing propagation on while the returned function is not called. */
export function propagateWhileLive(): () => void {
  propagating++;
  let done = false;
  return () => {
    if (!done) propagating--;
    done = true;
  };
}

export function markRpcOperation(operation: Operation): void {
  rpcOperations.add(operation);
}

/** The wrapper of each handler, made on its first message (a handler is looked up under one route). */
const wrappers = new WeakMap<Handler, { route: unknown; runner: RpcRunner; wrapped: Handler }>();

/** A handler that runs as `runner` says, looking like the original to the server (`next`, `isEventHandler`, `extras`). */
function wrapHandler(handler: Handler, route: unknown, runner: RpcRunner): Handler {
  const known = wrappers.get(handler);
  if (known && known.route === route && known.runner === runner) return known.wrapped;
  const wrapped: Handler = function (this: unknown, ...args: unknown[]) {
    return runner.run(route, handler.isEventHandler === true, handler, this, args);
  };
  for (const key of ['isEventHandler', 'extras', 'next'] as const) {
    Object.defineProperty(wrapped, key, {
      configurable: true,
      enumerable: true,
      get: () => handler[key],
      set: (value) => ((handler as Record<typeof key, unknown>)[key] = value),
    });
  }
  Object.defineProperty(wrapped, WRAPPED, { value: handler });
  wrappers.set(handler, { route, runner, wrapped });
  return wrapped;
}

function withFields(target: Record<string, unknown>, fields: Record<string, string>): Record<string, unknown> {
  for (const [name, value] of Object.entries(fields)) if (!(name in target)) target[name] = value;
  return target;
}

/** The caller's fields, when a live module propagates and the caller runs in an operation. */
function fieldsToSend(): Record<string, string> | undefined {
  if (propagating <= 0) return undefined;
  const operation = currentOperation();
  return operation ? outgoingFields(operation) : undefined;
}

/**
 * Hooks `@nestjs/microservices` once per process, each hook passing straight
 * through for what the module does not track:
 *
 * - `MicroservicesModule.setupListeners`: which app (container) a server's
 *   handlers belong to, so a server of an app without the module is left alone.
 * - `Server.getHandlerByPattern`: every transport looks its handler up here for
 *   each message and event; the handler found is run as one operation
 *   (`RpcRunner`), in its async context, under the pattern's route.
 * - `RpcExceptionsHandler.handle`: where Nest hands a handler's error to the
 *   app's RPC filters, then its own; the error is noted on the message's
 *   operation (with whether an app filter takes it) and goes on unchanged.
 *   The module registers no filter, so every filter of the app runs as before.
 * - Client side, inside an operation: `ClientProxy.createPacket` adds the
 *   caller's fields to the packet's `metadata` for TCP and Redis clients
 *   (after the app's own `setOnDispatchHook`, never over a key it set), and
 *   `ClientNats.mergeHeaders` adds them as NATS headers (never over a header the
 *   app set, and on a copy: the app's `NatsRecord` stays as it was).
 */
export function hookMicroservices(pkg: MicroservicesPackage): void {
  hookOnce(pkg.MicroservicesModule?.prototype, (prototype: Hookable<'setupListeners'>) => {
    const setupListeners = prototype.setupListeners;
    if (typeof setupListeners !== 'function') return;
    prototype.setupListeners = function (this: unknown, container: unknown, server: unknown, ...rest: unknown[]) {
      try {
        const modules: unknown = (container as { getModules?: () => unknown } | null | undefined)?.getModules?.();
        if (server && typeof server === 'object' && modules && typeof modules === 'object') owners.set(server, modules);
      } catch {
        /* the server runs untracked */
      }
      return setupListeners.call(this, container, server, ...rest);
    };
  });

  hookOnce(pkg.Server?.prototype, (prototype: Hookable<'getHandlerByPattern'>) => {
    const getHandlerByPattern = prototype.getHandlerByPattern;
    if (typeof getHandlerByPattern !== 'function') return;
    prototype.getHandlerByPattern = function (this: { getRouteFromPattern?: unknown }, pattern: unknown, ...rest: unknown[]) {
      const handler: unknown = getHandlerByPattern.call(this, pattern, ...rest);
      if (typeof handler !== 'function' || (handler as { [WRAPPED]?: unknown })[WRAPPED]) return handler;
      try {
        const modules = owners.get(this);
        const runner = modules && runners.get(modules);
        if (!runner) return handler;
        let route: unknown = pattern;
        try {
          route = typeof this.getRouteFromPattern === 'function' ? this.getRouteFromPattern(pattern) : pattern;
        } catch {
          /* the pattern as it came */
        }
        return wrapHandler(handler as Handler, route, runner);
      } catch {
        return handler;
      }
    };
  });

  hookOnce(pkg.RpcExceptionsHandler?.prototype, (prototype: Hookable<'handle'>) => {
    const handle = prototype.handle;
    if (typeof handle !== 'function') return;
    prototype.handle = function (this: { filters?: unknown }, exception: unknown, ...rest: unknown[]) {
      try {
        const operation = currentOperation();
        if (operation && rpcOperations.has(operation)) operation.noteError(exception, answeredByAppFilter(this.filters, exception));
      } catch {
        /* the app's own handling matters more than the note */
      }
      return handle.call(this, exception, ...rest);
    };
  });

  const metadataClients = [pkg.ClientTCP?.prototype, pkg.ClientRedis?.prototype].filter((p): p is object => typeof p === 'object');
  hookOnce(pkg.ClientProxy?.prototype, (prototype: Hookable<'createPacket'>) => {
    const createPacket = prototype.createPacket;
    if (typeof createPacket !== 'function') return;
    prototype.createPacket = function (this: object, ...args: unknown[]) {
      const packet: unknown = createPacket.apply(this, args);
      try {
        if (packet && typeof packet === 'object' && metadataClients.some((p) => Object.prototype.isPrototypeOf.call(p, this))) {
          const fields = fieldsToSend();
          if (fields) {
            const withMetadata = packet as { metadata?: unknown };
            // A copy: the app's own metadata object may be shared by every message it sends.
            const metadata = withMetadata.metadata;
            if (metadata === undefined || metadata === null) withMetadata.metadata = { ...fields };
            else if (Object.getPrototypeOf(metadata) === Object.prototype)
              withMetadata.metadata = withFields({ ...(metadata as Record<string, unknown>) }, fields);
          }
        }
      } catch {
        /* the packet goes as the app made it */
      }
      return packet;
    };
  });

  hookOnce(pkg.ClientNats?.prototype, (prototype: Hookable<'mergeHeaders'>) => {
    const mergeHeaders = prototype.mergeHeaders;
    if (typeof mergeHeaders !== 'function') return;
    prototype.mergeHeaders = function (this: object, requestHeaders: unknown, ...rest: unknown[]) {
      let fields: Record<string, string> | undefined;
      try {
        fields = fieldsToSend();
      } catch {
        fields = undefined;
      }
      if (!fields) return mergeHeaders.call(this, requestHeaders, ...rest);
      try {
        // New headers holding the caller's fields, made by the client itself (its `options.headers` path), so the
        // NATS package is never imported here; then the app's own headers, which win, and its `options.headers`.
        const own =
          requestHeaders && typeof (requestHeaders as { has?: unknown }).has === 'function' ? (requestHeaders as NatsHeaders) : undefined;
        const missing = Object.fromEntries(Object.entries(fields).filter(([name]) => !own?.has(name)));
        if (Object.keys(missing).length === 0) return mergeHeaders.call(this, requestHeaders, ...rest);
        const maker = Object.create(this, { options: { value: { headers: missing } } });
        const headers: NatsHeaders = mergeHeaders.call(maker, undefined);
        if (own) for (const name of own.keys()) for (const value of own.values(name)) headers.append(name, value);
        return mergeHeaders.call(this, headers, ...rest);
      } catch {
        return mergeHeaders.call(this, requestHeaders, ...rest);
      }
    };
  });
}

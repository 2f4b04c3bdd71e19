import type { Operation } from '../request/operation.js';
import { answeredByAppFilter, hookOnce } from '../errors/nest-hooks.js';
import { currentOperation } from '../request/request-context.js';

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/** Runs one message of a registered gateway (ws-telemetry.ts). */
export interface WsRunner {
  /** `call` is the handler as Nest made it (guards, pipes, interceptors, filters); `args`: client, data, ack or event. */
  message(pattern: unknown, callback: Fn, instance: object, call: () => unknown, args: unknown[]): unknown;
}

/** What is read of `@nestjs/websockets`, loaded with `import()` (an app without it loads nothing of it). */
export interface WebSocketsPackage {
  WsContextCreator: { prototype: { create: Fn } };
  WsExceptionsHandler: { prototype: { handle: Fn } };
  WebSocketsController: { prototype: { getConnectionHandler: Fn; createRequestScopedHandler?: Fn } };
  MESSAGE_METADATA: string;
}

/**
 * What the hooks read, shared by every copy of the module in the process: the
 * first copy hooks `@nestjs/websockets`, and the gateways of every copy's apps
 * are found through it.
 */
interface SharedState {
  /** The runner of each registered gateway instance; one no app registered runs untouched. */
  runners: WeakMap<object, WsRunner>;
  /** The upgrade request of each `ws` client (socket.io keeps its own on `client.request`). */
  upgradeRequests: WeakMap<object, unknown>;
  /** Each copy's way to note an error handed to the WS exceptions handler on its own message's operation. */
  errorSinks: Set<(exception: unknown, filters: unknown) => void>;
}
const SHARED = Symbol.for('nestjs-posthog-telemetry.ws-shared.v1');
const shared: SharedState = ((globalThis as Record<symbol, unknown>)[SHARED] ??= {
  runners: new WeakMap(),
  upgradeRequests: new WeakMap(),
  errorSinks: new Set(),
}) as SharedState;
const runners = shared.runners;
const upgradeRequests = shared.upgradeRequests;

/** The operations of this copy's gateway messages: errors are noted only on these. */
const messageOperations = new WeakSet<Operation>();
/** Whether one of the app's WS filters took the first error noted on a message's operation. */
const answeredErrors = new WeakMap<Operation, boolean>();

/** Notes an error on the message operation the caller runs in, if it is one of this copy's. Never throws. */
function noteMessageError(exception: unknown, filters: unknown): void {
  try {
    const operation = currentOperation();
    if (!operation || !messageOperations.has(operation)) return;
    const answered = answeredByAppFilter(filters, exception);
    if (!operation.hasError) answeredErrors.set(operation, answered);
    operation.noteError(exception, answered);
  } catch {
    /* the app's own handling matters more than the note */
  }
}

export function registerGateway(instance: object, runner: WsRunner): () => void {
  if (runners.has(instance)) return () => undefined;
  runners.set(instance, runner);
  return () => {
    if (runners.get(instance) === runner) runners.delete(instance);
  };
}

export function markMessageOperation(operation: Operation): void {
  messageOperations.add(operation);
}

/** One of the app's WS filters answered the operation's error (rather than Nest's own `exception` answer). */
export function answeredByApp(operation: Operation): boolean {
  return answeredErrors.get(operation) === true;
}

export function upgradeRequestOf(client: unknown): unknown {
  return client !== null && typeof client === 'object' ? upgradeRequests.get(client) : undefined;
}

/**
 * `made`, the function each message of `callback`'s event calls, wrapped: for a
 * gateway `instance` an app registered, the message runs through its runner.
 */
function messageHandler(made: unknown, instance: unknown, callback: unknown, messageMetadata: string): unknown {
  if (typeof made !== 'function' || instance === null || typeof instance !== 'object' || typeof callback !== 'function') return made;
  let pattern: unknown;
  try {
    pattern = Reflect.getMetadata(messageMetadata, callback);
  } catch {
    pattern = undefined;
  }
  const handler = made as Fn;
  return function (this: unknown, ...args: unknown[]) {
    const runner = runners.get(instance);
    if (!runner) return handler.apply(this, args);
    return runner.message(pattern, callback as Fn, instance, () => handler.apply(this, args), args);
  };
}

/**
 * Where the module meets gateway messages, once per process; each hook passes
 * straight through for gateways no app registered, and changes nothing of
 * what Nest does:
 *
 * - `WsContextCreator.create` makes, for each `@SubscribeMessage` handler, the
 *   function every message of that event calls (guards, pipes, interceptors, the
 *   handler, and the exceptions handler around them). The function it returns is
 *   wrapped: a message of a registered gateway runs as one operation.
 * - `WsExceptionsHandler.handle`: every error of a handler, a guard or a pipe is
 *   handed here before Nest picks the app's WS filter or its own answer (the
 *   `exception` event). The module notes it on the message's operation, with
 *   whether an app filter takes it, and passes it on.
 * - `WebSocketsController.createRequestScopedHandler`: the same, for a
 *   request-scoped gateway, whose instance (per connection) is made per message.
 * - `WebSocketsController.getConnectionHandler`: the `ws` adapter hands the
 *   upgrade request only to `handleConnection`; it is kept for the connection's ids.
 */
export function hookWebSockets(ws: WebSocketsPackage): void {
  shared.errorSinks.add(noteMessageError);
  hookOnce(ws.WsContextCreator.prototype, (prototype) => {
    const create = prototype.create;
    prototype.create = function (this: unknown, ...createArgs: unknown[]) {
      const [instance, callback] = createArgs;
      return messageHandler(create.apply(this, createArgs), instance, callback, ws.MESSAGE_METADATA);
    };
  });

  hookOnce(ws.WsExceptionsHandler.prototype, (prototype) => {
    const handle = prototype.handle;
    prototype.handle = function (this: unknown, exception: unknown, ...rest: unknown[]) {
      const filters = (this as { filters?: unknown } | undefined)?.filters;
      for (const note of shared.errorSinks) note(exception, filters);
      return handle.call(this, exception, ...rest);
    };
  });

  hookOnce(ws.WebSocketsController.prototype, (prototype) => {
    // A request-scoped gateway's handler makes its instance for the connection, then its message handler, per
    // message: the gateway registered is the one Nest discovered (the wrapper's), known where this is made.
    const createRequestScopedHandler = prototype.createRequestScopedHandler;
    if (typeof createRequestScopedHandler === 'function') {
      prototype.createRequestScopedHandler = function (this: unknown, ...handlerArgs: unknown[]) {
        const made = createRequestScopedHandler.apply(this, handlerArgs);
        const [wrapper, , , methodName] = handlerArgs as [{ instance?: unknown } | undefined, unknown, unknown, unknown];
        const instance = wrapper?.instance;
        const callback = typeof methodName === 'string' ? (instance as Record<string, unknown> | undefined)?.[methodName] : undefined;
        return messageHandler(made, instance, callback, ws.MESSAGE_METADATA);
      };
    }
    const getConnectionHandler = prototype.getConnectionHandler;
    prototype.getConnectionHandler = function (this: unknown, ...handlerArgs: unknown[]) {
      const handler = getConnectionHandler.apply(this, handlerArgs);
      if (typeof handler !== 'function') return handler;
      return function (this: unknown, ...args: unknown[]) {
        const [client, request] = args;
        try {
          // socket.io hands its socket alone; `ws` hands the client and its upgrade request.
          if (client !== null && typeof client === 'object' && request !== null && typeof request === 'object')
            upgradeRequests.set(client, request);
        } catch {
          /* never stand between a client and its connection */
        }
        return (handler as Fn).apply(this, args);
      };
    };
  });
}

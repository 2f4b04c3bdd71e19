import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional, type Provider } from '@nestjs/common';
import { DiscoveryService, HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { types } from 'node:util';
import { isObservable, Observable } from 'rxjs';
import { httpStatusOf } from '../errors/error-categorizer.js';
import type { SentryApi } from '../outlets/sentry-bridge.js';
import type { Operation } from '../request/operation.js';
import { Operations, type OperationInit } from '../request/operations.js';
import { operationOf } from '../request/request-context.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { SENTRY, SKIP_TELEMETRY, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import { frontendDistinctId } from '../request/frontend-identity.js';
import { isEngineIoRequest, messageRequestId, readConnection, type WsConnection } from './ws-connection.js';
import {
  answeredByApp,
  hookWebSockets,
  markMessageOperation,
  registerGateway,
  upgradeRequestOf,
  type WebSocketsPackage,
  type WsRunner,
} from './ws-hooks.js';

/** The `method` of a gateway message's events. */
export const WS_METHOD = 'WS';
/** Nest's answer to a guard that returned `false` (`@nestjs/core`'s `FORBIDDEN_MESSAGE`). */
const FORBIDDEN_MESSAGE = 'Forbidden resource';
/** Metadata key of `@WebSocketGateway()` (`@nestjs/websockets`' `GATEWAY_METADATA`). */
const GATEWAY_METADATA = 'websockets:is_gateway';

/** What the module loaded of `@nestjs/websockets`, or `undefined` when the app has no gateways' package. */
export const WS_PACKAGE = Symbol.for('nestjs-posthog-telemetry.ws-package');

interface LoadedWebSockets {
  /** Only tested with `instanceof`. */
  WsException: new (...args: never[]) => { getError(): unknown };
}

/**
 * Loads `@nestjs/websockets` with `import()` (an optional peer: an app without
 * it loads nothing of it) and hooks it, once per process. An async provider:
 * Nest resolves it while it makes the module's instances, before `app.init()`
 * connects the gateways, whose handlers are made then.
 */
export async function loadWebSockets(options: ResolvedTelemetryOptions): Promise<LoadedWebSockets | undefined> {
  if (options.mode === 'off' || !options.captureWebSockets) return undefined;
  try {
    const [creator, handler, controller, constants, errors] = await Promise.all([
      import('@nestjs/websockets/context/ws-context-creator.js' as string),
      import('@nestjs/websockets/exceptions/ws-exceptions-handler.js' as string),
      import('@nestjs/websockets/web-sockets-controller.js' as string),
      import('@nestjs/websockets/constants.js' as string),
      import('@nestjs/websockets/errors/ws-exception.js' as string),
    ]);
    const ws: WebSocketsPackage = {
      WsContextCreator: creator.WsContextCreator,
      WsExceptionsHandler: handler.WsExceptionsHandler,
      WebSocketsController: controller.WebSocketsController,
      MESSAGE_METADATA: constants.MESSAGE_METADATA,
    };
    if (![ws.WsContextCreator, ws.WsExceptionsHandler, ws.WebSocketsController].every((c) => typeof c?.prototype === 'object'))
      return undefined;
    hookWebSockets(ws);
    return { WsException: errors.WsException };
  } catch {
    return undefined; // no gateways in this app
  }
}

export const WS_PACKAGE_PROVIDER: Provider = { provide: WS_PACKAGE, inject: [TELEMETRY_OPTIONS], useFactory: loadWebSockets };

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/**
 * WebSocket gateways (`@nestjs/websockets`, with socket.io or `ws`): one
 * operation per `@SubscribeMessage` handler call, `endpoint` `ws:<event>`,
 * `method` `WS`, from the message's arrival to the handler's answer (or an
 * Observable's end). Its `request_id` is the connection's id with the message's
 * number (`<X-Request-ID of the handshake>:<n>`); the handshake's PostHog
 * session and distinct ids and the connection's user are its identity; the
 * handler and everything it calls run in its context (`getRequestContext()`).
 *
 * Status: 200 when the handler answered; 403 for a guard's rejection, 400 for
 * another `WsException`; an error an app filter answered, its own HTTP status;
 * anything else 500 (Nest answers "Internal server error"). Errors are seen where Nest hands them to
 * its WS exceptions handler (ws-hooks.ts): the app's filters and Nest's
 * `exception` answer run exactly as without the module.
 *
 * Also keeps socket.io's HTTP requests (long-polling, the upgrade's first
 * request) out of `api_request` unless `captureSocketIoPolling`.
 */
@Injectable()
export class WsTelemetry implements OnModuleInit, OnApplicationShutdown, WsRunner {
  private readonly logger = new Logger('Telemetry');
  private readonly registrations: (() => void)[] = [];
  private readonly connections = new WeakMap<object, WsConnection>();
  /** Operations already ended: an Observable's teardown and a failure may both try. */
  private readonly ended = new WeakSet<Operation>();
  private readonly pollingListener = (req: IncomingMessage) => {
    if (isEngineIoRequest(req.url)) operationOf(req)?.optOut();
  };
  private server?: {
    on(event: 'request', l: (req: IncomingMessage) => void): unknown;
    off(event: 'request', l: (req: IncomingMessage) => void): unknown;
  };

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(WS_PACKAGE) private readonly ws: LoadedWebSockets | undefined,
    private readonly operations: Operations,
    private readonly failures: TelemetryFailures,
    private readonly discovery: DiscoveryService,
    private readonly adapterHost: HttpAdapterHost,
    @Optional() @Inject(SENTRY) private readonly sentry?: SentryApi,
  ) {}

  onModuleInit(): void {
    if (!this.ws) return;
    try {
      for (const wrapper of this.discovery.getProviders()) {
        const { instance, metatype } = wrapper as { instance?: unknown; metatype?: unknown };
        if (!instance || typeof instance !== 'object' || typeof metatype !== 'function') continue;
        if (!Reflect.getMetadata(GATEWAY_METADATA, metatype)) continue;
        this.registrations.push(registerGateway(instance, this));
      }
    } catch (error) {
      this.failures.report('gateway registration', error);
    }
    if (this.options.captureSocketIoPolling) return;
    try {
      const server = this.adapterHost.httpAdapter?.getHttpServer?.();
      if (server && typeof server.on === 'function') {
        // After the module's request entry (a prepended listener), whatever the order: it only opts out.
        server.on('request', this.pollingListener);
        this.server = server;
      }
    } catch (error) {
      this.logger.warn(`socket.io's polling requests are not left out: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  onApplicationShutdown(): void {
    for (const unregister of this.registrations.splice(0)) unregister();
    this.server?.off('request', this.pollingListener);
  }

  /** One message of a registered gateway. Never throws of its own; the handler's result and errors, unchanged. */
  message(pattern: unknown, callback: Fn, instance: object, call: () => unknown, args: unknown[]): unknown {
    let operation: Operation;
    try {
      operation = this.start(pattern, callback, instance, args[0]);
    } catch (error) {
      this.failures.report('ws message entry', error);
      return call();
    }
    let result: unknown;
    let started = false;
    try {
      result = this.operations.run(operation, () =>
        this.isolated(() => {
          started = true;
          return call();
        }),
      );
    } catch (error) {
      if (!started) {
        // The context could not be set up: the message is handled anyway, unrecorded.
        this.failures.report('ws message context', error);
        return call();
      }
      operation.noteError(error);
      this.end(operation);
      throw error;
    }
    // Nest's handler is an async function: anything else is another hook's business, ended now.
    if (!types.isPromise(result)) {
      this.end(operation);
      return result;
    }
    return result.then(
      (value) => {
        if (!isObservable(value)) {
          this.end(operation);
          return value;
        }
        return this.observed(operation, value);
      },
      (error: unknown) => {
        // An app filter that rethrew: Nest's adapter logs it, as without the module.
        operation.noteError(error);
        this.end(operation);
        throw error;
      },
    );
  }

  private start(pattern: unknown, callback: Fn, instance: object, client: unknown): Operation {
    const connection = this.connectionOf(client);
    const n = ++connection.messages;
    const skip = Reflect.getMetadata(SKIP_TELEMETRY, callback) ?? Reflect.getMetadata(SKIP_TELEMETRY, instance.constructor);
    const init: OperationInit = {
      method: WS_METHOD,
      endpoint: `ws:${typeof pattern === 'string' ? pattern : String(pattern ?? 'unknown')}`,
      requestId: messageRequestId(connection, n),
      sessionId: connection.sessionId,
      frontendDistinctId: frontendDistinctId(connection.frontendDistinctId, this.options.frontendIdentity),
      frontendIdClaimed: this.options.frontendIdentity === 'anonymous',
      request: connection.request,
      skip: skip === true,
      standalone: true,
    };
    // Every message of a connection continues the trace its handshake brought (`traceparent`), as its own span.
    const operation = this.operations.create(
      { ...init, ...(connection.traceparent !== undefined ? { traceparent: connection.traceparent } : {}) },
      performance.now(),
    );
    markMessageOperation(operation);
    return operation;
  }

  private connectionOf(client: unknown): WsConnection {
    const key = client !== null && typeof client === 'object' ? client : undefined;
    const known = key && this.connections.get(key);
    if (known) return known;
    const connection = readConnection(client, upgradeRequestOf(client), this.options.requestIdHeader);
    if (key) this.connections.set(key, connection);
    return connection;
  }

  /** An Observable answer: subscribed to in the operation's context, which ends when it completes, fails or is dropped. */
  private observed(operation: Operation, source: Observable<unknown>): Observable<unknown> {
    return new Observable((subscriber) => {
      let subscription: { unsubscribe(): void } | undefined;
      try {
        subscription = this.operations.run(operation, () => source.subscribe(subscriber));
      } catch (error) {
        operation.noteError(error);
        this.end(operation);
        throw error;
      }
      return () => {
        subscription?.unsubscribe();
        this.end(operation);
      };
    });
  }

  private end(operation: Operation): void {
    try {
      if (this.ended.has(operation)) return;
      this.ended.add(operation);
      this.operations.finish(operation, operation.hasError ? this.statusOf(operation) : 200);
    } catch (error) {
      this.failures.report('ws message end', error);
    }
  }

  /**
   * The status an HTTP request would have had: a `WsException` is the app's answer to the client (403 for a
   * guard's rejection, else 400); an error one of the app's filters answered weighs its own HTTP status; any other
   * is Nest's "Internal server error" (and its error log), 500.
   */
  private statusOf(operation: Operation): number {
    const error = operation.error;
    const WsException = this.ws?.WsException;
    if (typeof WsException === 'function' && error instanceof WsException) {
      return error.getError() === FORBIDDEN_MESSAGE ? 403 : 400;
    }
    return answeredByApp(operation) ? (httpStatusOf(error) ?? 500) : 500;
  }

  /** `fn` in a Sentry isolation scope of its own, when the module has Sentry: one message's tags never reach another's. */
  private isolated<T>(fn: () => T): T {
    const sentry = this.sentry;
    return typeof sentry?.withIsolationScope === 'function' ? sentry.withIsolationScope(() => fn()) : fn();
  }
}

import { Inject, Injectable, OnApplicationShutdown, Optional, type Provider } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import { performance } from 'node:perf_hooks';
import { isObservable, Observable, tap } from 'rxjs';
import { types } from 'node:util';
import type { SentryApi } from '../outlets/sentry-bridge.js';
import type { Operation } from '../request/operation.js';
import { Operations } from '../request/operations.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { SENTRY, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import { incomingFields } from './rpc-correlation.js';
import {
  hookMicroservices,
  markRpcOperation,
  propagateWhileLive,
  registerRpcApp,
  type MicroservicesPackage,
  type RpcRunner,
} from './rpc-hooks.js';
import { rpcEndpoint, rpcStatusOf } from './rpc-pattern.js';
import { tracingId } from '../request/tracing-id.js';

/** `method` of a request-response message (`ClientProxy.send`, `@MessagePattern`). */
export const RPC_METHOD = 'RPC';
/** `method` of an event (`ClientProxy.emit`, `@EventPattern`). */
export const EVENT_METHOD = 'EVENT';

/** Loads `@nestjs/microservices` when the app has it; `undefined` otherwise (nothing of it is loaded). */
export async function loadMicroservices(): Promise<MicroservicesPackage | undefined> {
  try {
    const [main, handler, module] = await Promise.all([
      import('@nestjs/microservices'),
      import('@nestjs/microservices/exceptions/rpc-exceptions-handler.js'),
      import('@nestjs/microservices/microservices-module.js'),
    ]);
    return {
      Server: main.Server,
      ClientProxy: main.ClientProxy,
      ClientTCP: main.ClientTCP,
      ClientRedis: main.ClientRedis,
      ClientNats: main.ClientNats,
      RpcExceptionsHandler: handler.RpcExceptionsHandler,
      MicroservicesModule: module.MicroservicesModule,
    } as MicroservicesPackage;
  } catch {
    return undefined;
  }
}

/**
 * Microservices (`@nestjs/microservices`, an optional peer): each message a
 * handler of this app takes (`@MessagePattern`, `@EventPattern`, any
 * transport that looks its handlers up by pattern: TCP, Redis, NATS…) is one
 * operation, `endpoint: "rpc:<pattern>"`, `method` `RPC` or `EVENT`, ended
 * when the handler's answer stream settles; its error, as the app's RPC
 * filters and Nest's own handling see it, is reported once. The caller's
 * correlation id (and session, distinct id) comes from the message (rpc-correlation.ts);
 * the app's clients send the running operation's along (rpc-hooks.ts).
 *
 * The package is imported in this provider's async factory, before Nest sets
 * up any microservice's listeners, and only if installed.
 */
@Injectable()
export class RpcEntry implements OnApplicationShutdown, RpcRunner {
  private readonly undo: (() => void)[] = [];

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    private readonly operations: Operations,
    private readonly failures: TelemetryFailures,
    private readonly modules: ModulesContainer,
    private readonly pkg: MicroservicesPackage | undefined,
    @Optional() @Inject(SENTRY) private readonly sentry?: SentryApi,
  ) {
    // Now, not in `onModuleInit`: a hybrid app may start its microservices before `init()`.
    if (!pkg) return;
    try {
      hookMicroservices(pkg);
      if (this.options.mode !== 'off' && this.options.captureMicroservices) this.undo.push(registerRpcApp(this.modules, this));
      if (this.options.propagateToMicroservices) this.undo.push(propagateWhileLive());
    } catch (error) {
      this.failures.report('microservices hooks', error);
    }
  }

  onApplicationShutdown(): void {
    for (const undo of this.undo.splice(0)) undo();
  }

  /** One message: its handler runs in the operation's context. Never throws of its own; the handler's answer, unchanged. */
  run(route: unknown, isEvent: boolean, handler: (...args: unknown[]) => unknown, thisArg: unknown, args: unknown[]): unknown {
    let operation: Operation;
    try {
      const context = args[1];
      const incoming = incomingFields(context);
      operation = this.operations.create(
        {
          method: isEvent ? EVENT_METHOD : RPC_METHOD,
          endpoint: rpcEndpoint(route),
          requestId: incoming.requestId,
          traceparent: incoming.traceparent,
          sessionId: tracingId(incoming.sessionId),
          frontendDistinctId: tracingId(incoming.distinctId),
          request: context,
          standalone: true,
        },
        performance.now(),
      );
      markRpcOperation(operation);
    } catch (error) {
      this.failures.report('rpc entry', error);
      return handler.apply(thisArg, args);
    }
    let started = false;
    const call = () =>
      this.operations.run(operation, () => {
        started = true;
        let result: unknown;
        try {
          result = handler.apply(thisArg, args);
        } catch (error) {
          this.operations.finish(operation, operation.hasError ? rpcStatusOf(operation.error) : rpcStatusOf(error));
          throw error;
        }
        return this.observe(operation, result);
      });
    try {
      const sentry = this.sentry;
      return typeof sentry?.withIsolationScope === 'function' ? sentry.withIsolationScope(call) : call();
    } catch (error) {
      if (started) throw error;
      // The context could not be set up: the handler runs anyway, untracked.
      this.failures.report('rpc context', error);
      return handler.apply(thisArg, args);
    }
  }

  /** Ends the operation when the handler's answer settles; the answer itself goes on as it was. */
  private observe(operation: Operation, result: unknown): unknown {
    let ended = false;
    const end = (status: number, sentWhole = true) => {
      if (ended) return;
      ended = true;
      this.operations.finish(operation, status, sentWhole);
    };
    const failed = (error: unknown) => end(operation.hasError ? rpcStatusOf(operation.error) : rpcStatusOf(error));
    const watch = (value: unknown): unknown => {
      if (!isObservable(value)) {
        end(operation.hasError ? rpcStatusOf(operation.error) : 200);
        return value;
      }
      // Subscribed in the operation's context, wherever the server subscribes: the error the stream fails with
      // reaches Nest's RPC exception handling (and the hook there) inside the operation.
      const source = value as Observable<unknown>;
      const inContext = new Observable<unknown>((subscriber) => this.operations.run(operation, () => source.subscribe(subscriber)));
      return inContext.pipe(
        tap({
          error: failed,
          // Completed: an answer went out, even for an error one of the app's filters turned into one.
          complete: () => end(200),
          // The server stopped listening before the answer settled.
          finalize: () => end(499, false),
        }),
      );
    };
    try {
      if (types.isPromise(result)) {
        return result.then(watch, (error: unknown) => {
          failed(error);
          throw error;
        });
      }
      return watch(result);
    } catch (error) {
      this.failures.report('rpc answer', error);
      return result;
    }
  }
}

/** The provider: `@nestjs/microservices` is loaded (or not) before the instance is made. */
export const RPC_ENTRY_PROVIDER: Provider = {
  provide: RpcEntry,
  inject: [TELEMETRY_OPTIONS, Operations, TelemetryFailures, ModulesContainer, { token: SENTRY, optional: true }],
  useFactory: async (
    options: ResolvedTelemetryOptions,
    operations: Operations,
    failures: TelemetryFailures,
    modules: ModulesContainer,
    sentry?: SentryApi,
  ) => new RpcEntry(options, operations, failures, modules, await loadMicroservices(), sentry),
};

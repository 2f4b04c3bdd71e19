import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { ErrorReporter } from '../errors/error-reporter.js';
import { isIgnoredError } from '../errors/ignored-errors.js';
import { Identities } from '../events/identities.js';
import { REQUEST_MECHANISM } from '../events/operation-recorder.js';
import { isTracked } from '../events/outcome.js';
import type { Operation } from '../request/operation.js';
import { Operations } from '../request/operations.js';
import { operationOf } from '../request/request-context.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import {
  fieldPathOf,
  hookNestGraphqlPaths,
  ownTracked,
  trackGraphqlContext,
  trackedByContext,
  type TrackedGraphqlOperation,
} from './graphql-hooks.js';
import { graphqlEndpointOf, graphqlErrorStatus, INVALID_GRAPHQL_OPERATION, reportedError } from './graphql-naming.js';

type DriverKind = 'apollo' | 'mercurius';
type Start = (this: unknown, options: unknown) => Promise<unknown>;

/** What is read and extended of the options Nest's GraphQL module hands a driver's `start`. */
interface DriverOptions {
  plugins?: unknown;
  errorFormatter?: unknown;
}

/** What is read of Apollo Server's request context, in each hook of the module's plugin. */
interface ApolloRequestContext {
  contextValue?: unknown;
  request?: { operationName?: unknown; http?: { method?: unknown } };
  document?: unknown;
  errors?: unknown;
  response?: { body?: { kind?: unknown; singleResult?: { errors?: unknown }; initialResult?: { errors?: unknown } } };
}

/** What is read of Mercurius: its instance (on the Fastify app), an operation's context and its request. */
interface MercuriusInstance {
  addHook?(name: string, hook: (...args: never[]) => Promise<void>): void;
}
interface MercuriusRequest {
  method?: unknown;
  body?: unknown;
  query?: { operationName?: unknown };
}
interface MercuriusContext {
  operationId?: unknown;
  reply?: { request?: MercuriusRequest; raw?: unknown };
}
/** Mercurius's execution result, or the errors of an operation it refused. */
interface MercuriusExecution {
  errors?: unknown;
}

/** What Nest's `DiscoveryService` hands out (its `InstanceWrapper`), as far as it is read here. */
interface Discovered {
  token?: unknown;
  metatype?: unknown;
  instance?: unknown;
}

/** The class names of a class and of those it extends. */
function classNames(type: unknown): string[] {
  const names: string[] = [];
  for (
    let current = type;
    typeof current === 'function' && current !== Function.prototype && names.length < 10;
    current = Object.getPrototypeOf(current)
  ) {
    names.push((current as { name: string }).name);
  }
  return names;
}

/** Which GraphQL driver of `@nestjs/apollo` or `@nestjs/mercurius` a class is (or extends), by name: neither is imported. */
function driverKindOf(type: unknown): DriverKind | undefined {
  const names = classNames(type);
  if (!names.includes('AbstractGraphQLDriver')) return undefined;
  if (names.some((n) => n.startsWith('Apollo'))) return 'apollo';
  if (names.some((n) => n.startsWith('Mercurius'))) return 'mercurius';
  return undefined;
}

/** The telemetry of each registered driver instance; shared by every copy of the module in the process. */
const DRIVERS = Symbol.for('nestjs-posthog-telemetry.graphql-drivers');
const drivers: { wrapper: Discovered; telemetry: GraphqlTelemetry }[] = ((globalThis as Record<symbol, unknown>)[DRIVERS] ??= []) as never;
const HOOKED = Symbol.for('nestjs-posthog-telemetry.graphql-driver-hooked');

/**
 * Hooks a driver class's `start(options)` once per process. Nest's GraphQL module calls it from its
 * `onModuleInit` with its complete options; for an instance a telemetry module registered, the
 * telemetry adds its Apollo plugin or its Mercurius hooks; for any other, it is the original call.
 */
function hookDriverStart(prototype: Record<string | symbol, unknown>): void {
  if (prototype[HOOKED] || typeof prototype.start !== 'function') return;
  const start = prototype.start as Start;
  Object.defineProperty(prototype, HOOKED, { value: true });
  prototype.start = function (this: unknown, options: unknown) {
    const telemetry = drivers.find((d) => d.wrapper.instance === this)?.telemetry;
    return telemetry ? telemetry.startDriver(this, options, start) : start.call(this, options);
  };
}

/** One GraphQL operation, as the adapter follows it from its start to its answer. */
class GraphqlOperationState implements TrackedGraphqlOperation {
  /** Execution began (Mercurius's `preExecution`): its end is the resolution, not an error answer. */
  executing = false;
  /** The query text (Mercurius's `preParsing`), to find a refused batch entry by. */
  source: unknown = undefined;
  finished = false;
  document: unknown = undefined;

  /** Every error of the operation, once each, in the order seen: the first is the operation's own. */
  readonly errors: unknown[] = [];

  constructor(
    readonly operation: Operation,
    readonly operationName: unknown,
    /** The request in the GraphQL context, where auth guards set `user`. */
    readonly request: unknown,
    /** The HTTP request's operation, which carries this one. */
    readonly http: Operation | undefined,
  ) {}

  /**
   * The operation's name, once its document is known. The first named operation of an HTTP request also
   * names the request's own (carried) operation, the one the resolvers' code runs in: what the app reports
   * itself there (`captureError`) is filed under the GraphQL operation rather than `(unmatched)`.
   */
  nameFrom(document: unknown): void {
    if (this.operation.endpoint !== undefined || document === undefined) return;
    this.document = document;
    const endpoint = graphqlEndpointOf(document, this.operationName);
    this.operation.matchRoute(endpoint, this.request);
    if (this.http && this.http.endpoint === undefined) this.http.matchRoute(endpoint, this.request);
  }

  /** Fields whose error one of the app's filters answered: the error in the result there is that answer. */
  readonly answeredPaths = new Set<string>();

  noteError(error: unknown, answered = false, path?: string): void {
    if (this.finished) return;
    if (path !== undefined) this.answeredPaths.add(path);
    if (!this.errors.includes(error)) this.errors.push(error);
    this.operation.noteError(error, answered);
  }

  /** An error of the result (Apollo's `didEncounterErrors`, Mercurius's `errorFormatter`). */
  noteResultError(error: unknown): void {
    const path = fieldPathOf(error);
    // The app's filter answered the resolver's error with this one: the resolver's was noted, as answered.
    if (path !== undefined && this.answeredPaths.has(path)) return;
    this.noteError(reportedError(error));
  }
}

/**
 * GraphQL (`@nestjs/graphql` with Apollo, `@nestjs/apollo`, or Mercurius, `@nestjs/mercurius`): each
 * operation is an operation of its own (`endpoint` `graphql:<query|mutation|subscription> <Name>`), which
 * shares the correlation id, session and frontend ids of the HTTP request carrying it, and whose user is
 * read from the request in its GraphQL context (`context.req`, where auth guards set `user`). The HTTP
 * request itself is then recorded through its operations only (`carryOperations`); a request that fails before
 * any operation starts (malformed JSON, no query) is recorded as any HTTP request.
 *
 * No GraphQL package is imported: the driver is found among the app's providers by its class names, and
 * its `start` hooked (once per process) to add an Apollo plugin to the options or Mercurius hooks to its
 * instance; resolvers and their errors are seen in Nest itself (graphql-hooks.ts). Subscriptions over
 * WebSockets are not followed.
 */
@Injectable()
export class GraphqlTelemetry implements OnApplicationShutdown {
  private readonly registered: { wrapper: Discovered; telemetry: GraphqlTelemetry }[] = [];

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    private readonly operations: Operations,
    private readonly failures: TelemetryFailures,
    private readonly discovery: DiscoveryService,
    private readonly identities: Identities,
    private readonly errors: ErrorReporter,
  ) {
    if (options.mode === 'off' || options.captureGraphql === false) return;
    this.guard('graphql hooks', () => {
      // Drivers are known from the scan, before their instances are made and started (onModuleInit).
      for (const wrapper of this.discovery.getProviders() as unknown as Discovered[]) {
        const type = typeof wrapper.metatype === 'function' ? wrapper.metatype : undefined;
        if (!type || !driverKindOf(type) || drivers.some((d) => d.wrapper === wrapper)) continue;
        hookNestGraphqlPaths();
        hookDriverStart((type as { prototype: Record<string | symbol, unknown> }).prototype);
        const entry = { wrapper, telemetry: this };
        drivers.push(entry);
        this.registered.push(entry);
      }
    });
  }

  onApplicationShutdown(): void {
    for (const entry of this.registered.splice(0)) {
      const index = drivers.indexOf(entry);
      if (index >= 0) drivers.splice(index, 1);
    }
  }

  /** The driver's `start`, with the module's plugin or hooks. The driver starts whatever happens here. */
  async startDriver(driver: unknown, options: unknown, start: Start): Promise<unknown> {
    const kind = driverKindOf((driver as object)?.constructor);
    if (kind === 'apollo') {
      this.guard('graphql plugin', () => {
        if (options && typeof options === 'object') {
          const driverOptions = options as DriverOptions;
          driverOptions.plugins = [...(Array.isArray(driverOptions.plugins) ? driverOptions.plugins : []), this.apolloPlugin()];
        }
      });
      return start.call(driver, options);
    }
    if (kind === 'mercurius') {
      try {
        await this.wrapMercuriusErrorFormatter(options);
      } catch (error) {
        this.failures.report('graphql error formatter', error);
      }
      const result = await start.call(driver, options);
      const fastify = driver as { httpAdapterHost?: { httpAdapter?: { getInstance?(): { graphql?: unknown } | undefined } } };
      this.guard('graphql hooks', () => this.addMercuriusHooks(fastify.httpAdapterHost?.httpAdapter?.getInstance?.()?.graphql));
      return result;
    }
    return start.call(driver, options);
  }

  // ---- Apollo Server (a plugin: one `requestDidStart` per operation, batched ones included).

  private apolloPlugin() {
    return {
      requestDidStart: async (requestContext: ApolloRequestContext | undefined) => {
        const context = requestContext?.contextValue;
        const state = this.begin(context, requestContext?.request?.operationName, requestContext?.request?.http?.method);
        if (!state) return undefined;
        return {
          didResolveOperation: async (operationContext: ApolloRequestContext | undefined) => {
            state.nameFrom(operationContext?.document);
          },
          didEncounterErrors: async (errorContext: ApolloRequestContext | undefined) => {
            this.noteErrors(state, errorContext?.errors);
          },
          willSendResponse: async (responseContext: ApolloRequestContext | undefined) => {
            const body = responseContext?.response?.body;
            const errors = responseContext?.errors ?? (body?.kind === 'single' ? body.singleResult?.errors : body?.initialResult?.errors);
            state.document = responseContext?.document;
            this.end(state, errors);
          },
        };
      },
    };
  }

  // ---- Mercurius (hooks on its instance; its error formatter sees the errors of operations that never execute).

  private addMercuriusHooks(found: unknown): void {
    const graphql = found as MercuriusInstance | null | undefined;
    if (typeof graphql?.addHook !== 'function') return;
    graphql.addHook('preParsing', async (_schema: unknown, source: unknown, context: MercuriusContext | undefined) => {
      const state = this.begin(context, mercuriusOperationName(context), context?.reply?.request?.method);
      if (state) {
        state.source = source;
        // A batch entry's context is made from the batch's (`Object.create`), which Mercurius formats the
        // entry's refusal with: the batch's context knows its entries.
        // Only a real batch entry (its own `operationId`, made from a context with `operationsCount`): an app's
        // context that is a class instance has a prototype that lives for good.
        const batch = Object.getPrototypeOf(context);
        const isBatchEntry =
          typeof context?.operationId === 'number' &&
          batch &&
          typeof batch === 'object' &&
          Object.prototype.hasOwnProperty.call(batch, 'operationsCount');
        if (isBatchEntry) {
          const entries = entriesOf.get(batch);
          if (entries) entries.push(state);
          else entriesOf.set(batch, [state]);
        }
      }
    });
    graphql.addHook('preValidation', async (_schema: unknown, document: unknown, context: unknown) => {
      const state = trackedByContext(context);
      if (state instanceof GraphqlOperationState) state.document = document;
    });
    graphql.addHook('preExecution', async (_schema: unknown, document: unknown, context: unknown) => {
      const state = trackedByContext(context);
      if (state instanceof GraphqlOperationState) {
        state.executing = true;
        state.nameFrom(state.document ?? document);
      }
    });
    graphql.addHook('onResolution', async (execution: MercuriusExecution | undefined, context: unknown) => {
      const state = trackedByContext(context);
      if (state instanceof GraphqlOperationState) this.end(state, execution?.errors);
    });
  }

  /** Mercurius's `errorFormatter` (the app's, or Mercurius's default), noting the errors first. */
  private async wrapMercuriusErrorFormatter(found: unknown): Promise<void> {
    if (!found || typeof found !== 'object') return;
    const options = found as DriverOptions;
    let formatter = options.errorFormatter;
    if (typeof formatter !== 'function') {
      const mercurius = (await import('mercurius')) as unknown as {
        default?: { defaultErrorFormatter?: unknown };
        defaultErrorFormatter?: unknown;
      };
      formatter = (mercurius.default ?? mercurius).defaultErrorFormatter;
      if (typeof formatter !== 'function') return;
    }
    const original = formatter as (this: unknown, execution: MercuriusExecution | undefined, context: unknown) => unknown;
    // The formatter keeps the `this` Mercurius calls it with: the module's steps are arrows.
    const noteErrors = (state: GraphqlOperationState, errors: unknown) => this.noteErrors(state, errors);
    const end = (state: GraphqlOperationState, errors: unknown) => this.end(state, errors);
    options.errorFormatter = function (this: unknown, execution: MercuriusExecution | undefined, context: unknown) {
      let state: GraphqlOperationState | undefined;
      try {
        const tracked = trackedByContext(context) ?? refusedBatchEntry(context, execution?.errors);
        if (tracked instanceof GraphqlOperationState && !tracked.finished) {
          state = tracked;
          noteErrors(state, execution?.errors);
        }
      } catch {
        state = undefined;
      }
      const formatted = original.call(this, execution, context);
      // An operation refused before it executed (parse, validation): its answer is this one.
      if (state && !state.executing) end(state, execution?.errors);
      return formatted;
    };
  }

  // ---- Both drivers.

  /** A GraphQL operation starts, with the context its resolvers will get. Never throws. */
  private begin(context: unknown, operationName: unknown, method: unknown): GraphqlOperationState | undefined {
    try {
      if (!context || typeof context !== 'object') return undefined;
      // The same operation started twice (Mercurius's `preParsing` of a reused context): the first start counts.
      const existing = ownTracked(context);
      if (existing instanceof GraphqlOperationState && !existing.finished) return existing;
      const request = requestOf(context);
      const http = operationOf(request) ?? operationOf((request as { raw?: unknown } | null | undefined)?.raw);
      const operation = this.operations.create({
        method: typeof method === 'string' && method !== '' ? method.toUpperCase() : (http?.method ?? 'POST'),
        request,
        requestId: http?.requestId,
        sessionId: http?.sessionId,
        frontendDistinctId: http?.frontendDistinctId,
        frontendIdClaimed: http?.frontendIdClaimed,
        skip: http?.skip,
        traceparent: traceparentOf(http),
        standalone: http !== undefined,
      });
      const state = new GraphqlOperationState(operation, operationName, request, http);
      trackGraphqlContext(context, state);
      // The HTTP request is recorded through its GraphQL operations; the code running in it (resolvers:
      // `getRequestContext()`, `capture`) keeps its context, with the user read where the guards set it.
      if (http) {
        http.carryOperations();
        http.matchRoute(undefined, request);
      }
      this.endWithResponse(state, responseOf(context, request));
      return state;
    } catch (error) {
      this.failures.report('graphql operation start', error);
      return undefined;
    }
  }

  /**
   * Whatever happens to an operation, it ends with its response at the latest (a batch entry Mercurius
   * answers for itself, a client that went away): one `close` listener per response, for all its operations.
   */
  private endWithResponse(state: GraphqlOperationState, response: NodeResponse | undefined): void {
    if (!response || typeof response.once !== 'function') return;
    let pending = pendingOf.get(response);
    if (!pending) {
      const states: GraphqlOperationState[] = [];
      pending = states;
      pendingOf.set(response, states);
      response.once('close', () => {
        for (const open of states.splice(0)) this.end(open, undefined, response.writableFinished !== false, response.statusCode);
      });
    }
    pending.push(state);
  }

  private noteErrors(state: GraphqlOperationState, errors: unknown): void {
    try {
      if (!Array.isArray(errors) || state.finished) return;
      for (const error of errors) state.noteResultError(error);
    } catch (error) {
      this.failures.report('graphql errors', error);
    }
  }

  /**
   * The operation's answer: `errors` is its result's, as formatted (or `undefined` when the response closed
   * first); the errors themselves were noted as they were thrown or met. Its status: 200 without errors,
   * else the first error's (graphql-naming.ts). Once per operation.
   */
  private end(state: GraphqlOperationState, errors: unknown, sentWhole = true, responseStatus?: number): void {
    if (state.finished) return;
    state.finished = true;
    try {
      const operation = state.operation;
      if (!operation.endpoint) {
        const endpoint = state.document ? graphqlEndpointOf(state.document, state.operationName) : INVALID_GRAPHQL_OPERATION;
        operation.matchRoute(endpoint, state.request);
      }
      // The error as thrown says more than its formatted answer (Mercurius's drops the status); the answer's
      // code says more of a refused document (Apollo's `GRAPHQL_VALIDATION_FAILED`).
      const thrown = operation.hasError ? graphqlErrorStatus(operation.error) : 500;
      const answered = Array.isArray(errors) ? errors.length > 0 : operation.hasError;
      // Ended by its response alone, with no error seen: the response's status says whether it was refused.
      const unseen = typeof responseStatus === 'number' && responseStatus >= 400 ? responseStatus : 200;
      const status = !answered ? unseen : thrown !== 500 || !Array.isArray(errors) ? thrown : graphqlErrorStatus(errors[0]);
      this.operations.finish(operation, status, sentWhole);
      this.reportOtherErrors(state);
    } catch (error) {
      this.failures.report('graphql operation end', error);
    }
  }

  /**
   * The errors of an operation after its first (several fields failing), each reported once as the first
   * is (events/operation-recorder.ts): an `api_error`, with `$exception` and Sentry when its own status
   * is tracked. Its `status_code` is the error's own.
   */
  private reportOtherErrors(state: GraphqlOperationState): void {
    const operation = state.operation;
    if (operation.skip || operation.carried || state.errors.length < 2) return;
    const identity = this.identities.of(operation);
    if (!identity) return;
    for (const error of state.errors) {
      if (error === operation.error || isIgnoredError(error, this.options.ignoreErrors)) continue;
      const statusCode = graphqlErrorStatus(error);
      this.errors.report(
        identity,
        error,
        { endpoint: operation.endpoint ?? INVALID_GRAPHQL_OPERATION, method: operation.method, statusCode },
        {
          tracked: isTracked(statusCode, this.options.captureExceptionsMinStatus),
          handled: false,
          mechanism: REQUEST_MECHANISM,
        },
      );
    }
  }

  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.failures.report(what, error);
    }
  }
}

/** The request in a GraphQL context: `req` (Nest's drivers put it there), or Mercurius's `reply.request`. */
function requestOf(context: unknown): unknown {
  const c = context as { req?: unknown; request?: unknown; reply?: { request?: unknown } } | null | undefined;
  return c?.req ?? c?.request ?? c?.reply?.request;
}

/** The HTTP request's trace, continued by its GraphQL operations (W3C `traceparent`). */
function traceparentOf(http: Operation | undefined): string | undefined {
  const { traceId, spanId, traceFlags } = (http ?? {}) as { traceId?: unknown; spanId?: unknown; traceFlags?: unknown };
  return typeof traceId === 'string' && typeof spanId === 'string'
    ? `00-${traceId}-${spanId}-${typeof traceFlags === 'string' ? traceFlags : '01'}`
    : undefined;
}

interface NodeResponse {
  once?: (event: 'close', fn: () => void) => unknown;
  writableFinished?: boolean;
  statusCode?: number;
}

/** The operations of a Mercurius batch, by the batch's context. */
const entriesOf = new WeakMap<object, GraphqlOperationState[]>();

/**
 * The batch entry Mercurius refused (parse, validation) and formats with the batch's context: the entry not
 * executing whose query the error points at (a graphql-js error's `source.body`), else the only one left.
 */
function refusedBatchEntry(batch: unknown, errors: unknown): GraphqlOperationState | undefined {
  if (!batch || typeof batch !== 'object') return undefined;
  const open = (entriesOf.get(batch) ?? []).filter((entry) => !entry.finished && !entry.executing);
  const first = Array.isArray(errors) ? reportedError(errors[0]) : undefined;
  const body = (first as { source?: { body?: unknown } } | undefined)?.source?.body;
  return open.find((entry) => body !== undefined && entry.source === body) ?? (open.length === 1 ? open[0] : undefined);
}

/** The operations of each response not ended yet. */
const pendingOf = new WeakMap<object, GraphqlOperationState[]>();

/** The Node response the operation is answered on. */
function responseOf(context: unknown, request: unknown): NodeResponse | undefined {
  const c = context as MercuriusContext | null | undefined;
  const r = request as { res?: unknown; raw?: { res?: unknown } } | null | undefined;
  return (c?.reply?.raw ?? r?.res ?? r?.raw?.res) as NodeResponse | undefined;
}

/** The `operationName` Mercurius runs: of the batch entry, of the body, or of the query string. */
function mercuriusOperationName(context: unknown): unknown {
  const c = context as MercuriusContext | null | undefined;
  const request = c?.reply?.request;
  const body = request?.body;
  if (Array.isArray(body)) return body[typeof c?.operationId === 'number' ? c.operationId : 0]?.operationName;
  return (
    (body && typeof body === 'object' ? (body as { operationName?: unknown }).operationName : undefined) ?? request?.query?.operationName
  );
}

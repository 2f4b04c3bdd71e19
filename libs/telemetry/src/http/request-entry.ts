import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Operations } from '../request/operations.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { hookNestErrorPaths } from './nest-error-hooks.js';
import { hookRoutes } from './route-hooks.js';
import { hookOnce } from '../errors/nest-hooks.js';
import { attachOperation, OPERATION, operationOf } from '../request/request-context.js';
import { resolveRequestId } from '../request/request-id.js';
import { frontendDistinctId } from '../request/frontend-identity.js';
import { tracingId } from '../request/tracing-id.js';
import type { Operation } from '../request/operation.js';
import { internalized, responseHeader, type ResponseHeader } from './response-header.js';
import { pathOf } from './route-template.js';
import { TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import { pathMatcher, type PathMatcher, type ResolvedTelemetryOptions } from '../telemetry.options.js';

/** A server's `emit`, as it is wrapped. */
type EmitFn = (...args: unknown[]) => boolean;

/** What the module uses of a Fastify instance: its request ids. */
interface FastifyIds {
  genReqId?: (this: unknown, req: unknown) => string;
  setGenReqId?: (generate: (this: unknown, req: unknown) => string) => void;
}

/** A CORS preflight (what `enableCors` answers before every cross-origin call with custom headers). */
function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
}

/** The operations of a connection whose response has not finished yet, each with its response; and their owner. */
const OPEN = Symbol('nestjs-posthog-telemetry.open-operations');
interface OpenOperations {
  entry: RequestEntry;
  /** Flat pairs: operation, response, operation, response… (more than one only for pipelined requests). */
  pending: (Operation | ServerResponse)[];
}
type TrackedSocket = Socket & { [OPEN]?: OpenOperations };

/** Published by Node's HTTP server once a response was sent whole (`finish`), with its request and socket. */
const RESPONSE_FINISH = 'http.server.response.finish';

/**
 * A `writeHead` that sends, for a request the module tracks, the module's id in the request id header
 * whatever was set since the request entered (a request-id middleware, an interceptor's
 * `reply.header(...)`), so the header the frontend reads and the events' `request_id` never disagree.
 * `writeHead` answers; responses to requests the module does not track pass straight through.
 */
function keepingRequestId(writeHead: ServerResponse['writeHead']): ServerResponse['writeHead'] {
  // `arguments`, not rest parameters: no array per response on the way through.
  /* eslint-disable prefer-rest-params */
  return function writeHead$(this: ServerResponse) {
    const operation = (this.req as (IncomingMessage & { [OPERATION]?: Operation }) | undefined)?.[OPERATION];
    const header = operation?.idHeader;
    if (operation === undefined || header === undefined || this.headersSent)
      return writeHead.apply(this, arguments as unknown as Parameters<typeof writeHead>);
    const id = operation.requestId;
    if (arguments.length === 1) {
      // `res.end()`'s own call (Express): the status only.
      try {
        if (header.get(this) !== id) header.set(this, id);
      } catch {
        /* the response goes as the app wrote it */
      }
      return writeHead.call(this, arguments[0] as number);
    }
    const args = Array.prototype.slice.call(arguments);
    try {
      if (header.get(this) !== id) header.set(this, id);
      // Fields passed to `writeHead` itself (Fastify passes its reply's) override the ones set before:
      // a copy of them carries the id, the caller's own object or array is left as it was.
      const at = typeof args[1] === 'string' ? 2 : 1;
      const fields = args[at];
      if (fields !== null && typeof fields === 'object') args[at] = withRequestId(fields, header.lower, id);
    } catch {
      /* the response goes as the app wrote it */
    }
    return writeHead.apply(this, args as Parameters<typeof writeHead>);
  } as ServerResponse['writeHead'];
  /* eslint-enable prefer-rest-params */
}

/** Node's `ServerResponse.prototype.writeHead` keeps the id (`keepingRequestId`): patched once per process, not per response. */
function keepRequestIdInWriteHead(): void {
  hookOnce(ServerResponse.prototype as ServerResponse & object, (prototype) => {
    prototype.writeHead = keepingRequestId(prototype.writeHead);
  });
}

/** `writeHead`'s fields (an object, or `[name, value, …]`) with `id` as the value of the `name` header, if they name it: a copy. */
function withRequestId(fields: object, name: string, id: string): unknown {
  // Names of another length are not lower-cased to be compared (Fastify passes every header of its reply).
  if (Array.isArray(fields)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const field = String(fields[i]);
      if (field.length === name.length && field.toLowerCase() === name && fields[i + 1] !== id) (copy ??= [...fields])[i + 1] = id;
    }
    return copy ?? fields;
  }
  const record = fields as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(record)) {
    if (key.length === name.length && key.toLowerCase() === name && record[key] !== id) (copy ??= { ...record })[key] = id;
  }
  return copy ?? fields;
}

/**
 * Fastify's `request.id` (its log lines' `reqId`, and the `req.id` @fastify/middie hands to middleware such as
 * pino-http) becomes the module's id; requests the module did not see keep Fastify's own.
 */
function adoptRequestIdInFastify(fastify: FastifyIds | undefined): void {
  const own = fastify?.genReqId;
  if (typeof fastify?.setGenReqId !== 'function' || typeof own !== 'function') return;
  fastify.setGenReqId(function (this: unknown, req: unknown) {
    return operationOf(req)?.requestId ?? own.call(this, req);
  });
}

/**
 * Where a request enters and ends: correlation id (kept or made, and
 * returned), the frontend's PostHog ids, the start time, and the async
 * context everything after runs in.
 *
 * It wraps the Node HTTP server's `emit` of `request`, ahead of Express or
 * Fastify, rather than being a Nest middleware: the same code for both
 * adapters, every request included (404s, requests other middleware rejects),
 * none of Nest's per-request middleware routing, and every listener runs
 * inside the request's context (`run`, so nothing of it leaks into the
 * connection's next request). The request ends where Node's HTTP server says
 * its response finished (`diagnostics_channel`), or with its connection: no
 * listener per request (see docs/performance.md).
 */
@Injectable()
export class RequestEntry implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Telemetry');
  private readonly requestHeader: string;
  private readonly excluded: PathMatcher;
  /** The request id header of its responses (`X-Request-ID`). */
  private readonly idHeader: ResponseHeader;
  private server?: { emit: EmitFn };
  private emit?: EmitFn;
  private ownEmit = false;
  private wrapper?: EmitFn;
  /** Its `emit` wrapper hands requests on (until the app shuts down). */
  active = false;
  private readonly onFinish = (message: unknown): void =>
    this.finished(message as { request: IncomingMessage; response: ServerResponse; socket?: TrackedSocket });

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    private readonly operations: Operations,
    private readonly failures: TelemetryFailures,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    this.requestHeader = internalized(options.requestIdHeader);
    this.excluded = pathMatcher(options.excludePaths);
    this.idHeader = responseHeader(options.requestIdHeader === 'x-request-id' ? 'X-Request-ID' : this.requestHeader);
    // Before Nest builds its routes (ahead of any module's `onModuleInit`).
    hookNestErrorPaths();
    hookRoutes();
    keepRequestIdInWriteHead();
  }

  onModuleInit(): void {
    const server = this.adapterHost.httpAdapter?.getHttpServer?.();
    if (!server || typeof server.emit !== 'function' || typeof server.prependListener !== 'function') {
      // An application context or a serverless adapter: there is no HTTP server to listen to.
      if (this.adapterHost.httpAdapter) this.logger.warn('No Node HTTP server found: requests are not tracked.');
      return;
    }
    const emit: EmitFn = server.emit;
    this.server = server;
    this.emit = emit;
    this.ownEmit = Object.prototype.hasOwnProperty.call(server, 'emit');
    this.active = true;
    server.emit = this.wrapper = emitThrough(this, emit);
    subscribe(RESPONSE_FINISH, this.onFinish);
    try {
      adoptRequestIdInFastify(this.adapterHost.httpAdapter.getInstance?.());
    } catch (error) {
      this.logger.warn(`Fastify's request ids stay its own: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  onApplicationShutdown(): void {
    if (!this.active) return;
    this.active = false;
    unsubscribe(RESPONSE_FINISH, this.onFinish);
    // Put back unless another library wrapped it since (then the wrapper passes through).
    const server = this.server;
    if (server && this.emit && server.emit === this.wrapper) {
      if (this.ownEmit) server.emit = this.emit;
      else delete (server as { emit?: unknown }).emit;
    }
  }

  /** One request (from the `emit` wrapper): its operation is made, then the adapter's listeners run in its context. */
  request(server: unknown, emit: EmitFn, req: IncomingMessage, res: ServerResponse): boolean {
    // Two modules on one server: the first one owns the request.
    if ((req as IncomingMessage & { [OPERATION]?: unknown })[OPERATION] !== undefined) return emit.call(server, 'request', req, res);
    let operation: Operation;
    try {
      operation = this.enter(req, res);
    } catch (error) {
      // Telemetry never stands between a request and the app: it goes on untracked.
      this.failures.report('request entry', error);
      return emit.call(server, 'request', req, res);
    }
    // Until the adapter's listeners start, a failure (a posthog-node client that throws) is the module's: the
    // request still goes to the app, untracked. Once they started, what they throw is the app's, as without the module.
    emitting.started = false;
    try {
      return this.operations.run(operation, emitRequest, emit, server, req, res);
    } catch (error) {
      if (emitting.started) throw error;
      this.failures.report('request entry', error);
      return emit.call(server, 'request', req, res);
    }
  }

  private enter(req: IncomingMessage, res: ServerResponse): Operation {
    const startedAt = performance.now();
    const headers = req.headers;
    const sent = headers[this.requestHeader];
    const requestId = resolveRequestId(sent);
    this.idHeader.set(res, requestId);
    // The one id of the request for every library (docs/recipes.md, "One request id with nestjs-pino and nestjs-cls"):
    // pino-http reads `req.id`; recipes such as nestjs-cls's `idGenerator` read the header, which holds the
    // module's id when the client's was missing or invalid; and the response header is put back if replaced.
    (req as IncomingMessage & { id?: string }).id = requestId;
    if (sent !== requestId) headers[this.requestHeader] = requestId;
    const url = req.url;
    const operation = this.operations.createHttp(
      requestId,
      req.method ?? 'UNKNOWN',
      tracingId(headers['x-posthog-session-id']),
      frontendDistinctId(tracingId(headers['x-posthog-distinct-id']), this.options.frontendIdentity),
      this.options.frontendIdentity === 'anonymous',
      url,
      req,
      headers.traceparent,
      // Static files are left out only at the end, once it is known that no route answered.
      (!this.options.capturePreflights && isPreflight(req)) || this.excluded(pathOf(url)),
      startedAt,
    );
    operation.idHeader = this.idHeader;
    attachOperation(req, operation);
    if (!(res instanceof ServerResponse)) this.trackAlone(operation, res);
    else if (!operation.skip) this.track(operation, req.socket as TrackedSocket | null, res);
    return operation;
  }

  /**
   * Keeps the operation with its connection until its response finishes. Requests pipelined behind it on a
   * connection the client half-closed, and responses cut short (the client went away, the server destroyed
   * the socket), never finish: the connection's `close` finishes those still open.
   */
  private track(operation: Operation, socket: TrackedSocket | null, res: ServerResponse): void {
    if (!socket) return;
    let open = socket[OPEN];
    if (open === undefined) {
      const opened: OpenOperations = (open = { entry: this, pending: [] });
      socket[OPEN] = opened;
      socket.once('close', () => {
        const pending = opened.pending;
        opened.pending = [];
        for (let i = 0; i + 1 < pending.length; i += 2) {
          const response = pending[i + 1] as ServerResponse;
          this.operations.finish(pending[i] as Operation, response.statusCode, response.writableFinished);
        }
      });
    }
    open.pending.push(operation, res);
  }

  /**
   * A response of another kind (HTTP/2's compatibility API): no finish channel, no shared `writeHead`. It
   * gets its own `writeHead`, and the operation finishes at its `close`.
   */
  private trackAlone(operation: Operation, res: ServerResponse): void {
    res.writeHead = keepingRequestId(Object.getPrototypeOf(res).writeHead);
    if (!operation.skip) res.once('close', () => this.operations.finish(operation, res.statusCode, res.writableFinished));
  }

  /** A response was sent whole (`http.server.response.finish`). */
  private finished(message: { request: IncomingMessage; response: ServerResponse; socket?: TrackedSocket }): void {
    try {
      const open = message.socket?.[OPEN];
      if (open === undefined || open.entry !== this) return;
      const pending = open.pending;
      const operation = (message.request as IncomingMessage & { [OPERATION]?: Operation })[OPERATION];
      if (operation === undefined) return;
      const at = pending[0] === operation ? 0 : pending.indexOf(operation);
      if (at === -1) return;
      if (pending.length === 2) pending.length = 0;
      else pending.splice(at, 2);
      this.operations.finish(operation, message.response.statusCode, true);
    } catch (error) {
      this.failures.report('request end', error);
    }
  }
}

/** The server's `emit`, with each `request` handed to `entry` (while it is active). */
function emitThrough(entry: RequestEntry, emit: EmitFn): EmitFn {
  return function (this: unknown, event: unknown, req: unknown, res: unknown) {
    // eslint-disable-next-line prefer-rest-params -- every event of the server passes here: no array per call
    if (event !== 'request' || !entry.active) return emit.apply(this, arguments as unknown as unknown[]);
    return entry.request(this, emit, req as IncomingMessage, res as ServerResponse);
  } as EmitFn;
}

/** The server's own `emit` of the request, run in the request's context. */
function emitRequest(emit: EmitFn, server: unknown, req: IncomingMessage, res: ServerResponse): boolean {
  emitting.started = true;
  return emit.call(server, 'request', req, res);
}

/** Whether the request being entered reached the adapter's listeners (synchronous: one request at a time). */
const emitting = { started: false };

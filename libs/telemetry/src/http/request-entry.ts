import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Operations } from '../request/operations.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { hookNestErrorPaths } from './nest-error-hooks.js';
import { attachOperation, operationOf } from '../request/request-context.js';
import { resolveRequestId } from '../request/request-id.js';
import { frontendDistinctId } from '../request/frontend-identity.js';
import type { Operation } from '../request/operation.js';
import { pathOf } from './route-template.js';
import { TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import { isExcludedPath, type ResolvedTelemetryOptions } from '../telemetry.options.js';

/** Longest frontend session or distinct id kept; longer ones are ignored. */
const MAX_TRACING_HEADER = 200;
/** Control characters, and the comma Node joins a repeated header with: such a value names nobody. */
const UNUSABLE_CHARS = /[\x00-\x1f\x7f-\x9f,]/;
/** Values PostHog itself refuses as distinct ids. */
const ILLEGAL_IDS = new Set(['undefined', 'null', 'anonymous', 'guest', 'distinct_id', 'distinctid', 'id', 'not_authenticated', 'email', 'true', 'false', '0', 'nan', 'none', '[object object]']);

/** A usable tracing header value (posthog-js's `tracing_headers`), or `undefined`. */
function tracingHeader(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  const trimmed = value.trim();
  if (trimmed === '' || trimmed.length > MAX_TRACING_HEADER || UNUSABLE_CHARS.test(trimmed)) return undefined;
  if (ILLEGAL_IDS.has(trimmed.toLowerCase())) return undefined;
  return trimmed;
}

/** A CORS preflight (what `enableCors` answers before every cross-origin call with custom headers). */
function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
}

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** The operations of a connection whose response has not closed yet, and the response of each. */
const OPEN = Symbol('nestjs-posthog-telemetry.open-operations');
type OpenOperations = Map<Operation, ServerResponse>;

/**
 * A `res.writeHead` that sends the module's id in the request id header whatever was set since the request
 * entered (a request-id middleware, an interceptor's `reply.header(...)`): the header the frontend reads and the
 * events' `request_id` never disagree. Made once per module; it reads the id off the request it answers.
 */
function writeHeadKeepingRequestId(header: string): ServerResponse['writeHead'] {
  const name = header.toLowerCase();
  return function writeHead(this: ServerResponse, ...args: any[]) {
    try {
      const id = operationOf(this.req)?.requestId;
      if (id !== undefined && !this.headersSent) {
        if (this.getHeader(name) !== id) this.setHeader(header, id);
        // Fields passed to `writeHead` itself (Fastify passes its reply's) override the ones set before:
        // a copy of them carries the id, the caller's own object or array is left as it was.
        const at = typeof args[1] === 'string' ? 2 : 1;
        const fields = args[at];
        if (fields !== null && typeof fields === 'object') args[at] = withRequestId(fields, name, id);
      }
    } catch {
      /* the response goes as the app wrote it */
    }
    return Object.getPrototypeOf(this).writeHead.apply(this, args);
  } as ServerResponse['writeHead'];
}

/** `writeHead`'s fields (an object, or `[name, value, …]`) with `id` as the value of the `name` header, if they name it: a copy. */
function withRequestId(fields: any, name: string, id: string): unknown {
  if (Array.isArray(fields)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      if (String(fields[i]).toLowerCase() === name && fields[i + 1] !== id) (copy ??= [...fields])[i + 1] = id;
    }
    return copy ?? fields;
  }
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(fields)) if (key.toLowerCase() === name && fields[key] !== id) (copy ??= { ...fields })[key] = id;
  return copy ?? fields;
}

/**
 * Fastify's `request.id` (its log lines' `reqId`, and the `req.id` @fastify/middie hands to middleware such as
 * pino-http) becomes the module's id; requests the module did not see keep Fastify's own.
 */
function adoptRequestIdInFastify(fastify: any): void {
  const own = fastify?.genReqId;
  if (typeof fastify?.setGenReqId !== 'function' || typeof own !== 'function') return;
  fastify.setGenReqId(function (this: unknown, req: any) {
    return operationOf(req)?.requestId ?? own.call(this, req);
  });
}

/**
 * Where a request enters: correlation id (kept or made, and returned), the
 * frontend's PostHog ids, the start time, and the async context everything
 * after runs in.
 *
 * It listens to the Node HTTP server's `request` event, ahead of Express or
 * Fastify, rather than being a Nest middleware: the same code for both
 * adapters, every request included (404s, requests other middleware rejects),
 * and none of Nest's per-request middleware routing (see the README's overhead
 * section).
 */
@Injectable()
export class RequestEntry implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Telemetry');
  private readonly responseHeader: string;
  private readonly writeHead: ServerResponse['writeHead'];
  private readonly listener: RequestListener = (req, res) => this.enter(req, res);
  private server?: { prependListener(event: 'request', l: RequestListener): unknown; off(event: 'request', l: RequestListener): unknown };

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    private readonly operations: Operations,
    private readonly failures: TelemetryFailures,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    this.responseHeader = options.requestIdHeader === 'x-request-id' ? 'X-Request-ID' : options.requestIdHeader;
    this.writeHead = writeHeadKeepingRequestId(this.responseHeader);
    hookNestErrorPaths();
  }

  onModuleInit(): void {
    const server = this.adapterHost.httpAdapter?.getHttpServer?.();
    if (!server || typeof server.prependListener !== 'function') {
      // An application context or a serverless adapter: there is no HTTP server to listen to.
      if (this.adapterHost.httpAdapter) this.logger.warn('No Node HTTP server found: requests are not tracked.');
      return;
    }
    this.server = server;
    server.prependListener('request', this.listener);
    try {
      adoptRequestIdInFastify(this.adapterHost.httpAdapter.getInstance?.());
    } catch (error) {
      this.logger.warn(`Fastify's request ids stay its own: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  onApplicationShutdown(): void {
    this.server?.off('request', this.listener);
  }

  /**
   * The operation finishes at the response's `close`: once it is sent, or when the client went away first.
   * Requests pipelined behind it on a connection the client half-closed get no `close` of their own when
   * the connection goes: the connection's `close` finishes those still open.
   */
  private finishOnClose(operation: Operation, req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as (typeof req.socket & { [OPEN]?: OpenOperations }) | null;
    let open = socket?.[OPEN];
    if (socket && open === undefined) {
      const operations = (open = new Map());
      socket[OPEN] = operations;
      socket.once('close', () => {
        for (const [pending, response] of operations) this.operations.finish(pending, response.statusCode, response.writableFinished);
        operations.clear();
      });
    }
    open?.set(operation, res);
    res.once('close', () => {
      open?.delete(operation);
      this.operations.finish(operation, res.statusCode, res.writableFinished);
    });
  }

  private enter(req: IncomingMessage, res: ServerResponse): void {
    if (operationOf(req)) return; // two modules on one server: the first one owns the request
    const startedAt = performance.now();
    try {
      const headers = req.headers;
      const requestId = resolveRequestId(headers[this.options.requestIdHeader]);
      res.setHeader(this.responseHeader, requestId);
      // The one id of the request for every library (README, "One request id with nestjs-pino and nestjs-cls"):
      // pino-http reads `req.id`; recipes such as nestjs-cls's `idGenerator` read the header, which holds the
      // module's id when the client's was missing or invalid; and the response header is put back if replaced.
      (req as any).id = requestId;
      if (headers[this.options.requestIdHeader] !== requestId) headers[this.options.requestIdHeader] = requestId;
      res.writeHead = this.writeHead;
      const operation = this.operations.create(
        {
          requestId,
          method: req.method ?? 'UNKNOWN',
          sessionId: tracingHeader(headers['x-posthog-session-id']),
          frontendDistinctId: frontendDistinctId(tracingHeader(headers['x-posthog-distinct-id']), this.options.frontendIdentity),
          frontendIdClaimed: this.options.frontendIdentity === 'anonymous',
          rawUrl: req.url,
          request: req,
          traceparent: headers.traceparent,
          // Static files are left out only at the end, once it is known that no route answered.
          skip: (!this.options.capturePreflights && isPreflight(req)) || isExcludedPath(pathOf(req.url), this.options.excludePaths),
          standalone: true,
        },
        startedAt,
      );
      attachOperation(req, operation);
      if (!operation.skip) this.finishOnClose(operation, req, res);
      this.operations.enter(operation);
    } catch (error) {
      // Telemetry never stands between a request and the app: it goes on untracked.
      this.failures.report('request entry', error);
    }
  }
}

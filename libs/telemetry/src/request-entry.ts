import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { PostHog } from 'posthog-node';
import { PostHogTelemetryService } from './posthog-telemetry.service.js';
import { enterRequestContext } from './posthog-context.js';
import { REQUEST_STATE, RequestState } from './request-context.js';
import { resolveRequestId } from './request-id.js';
import { pathOf } from './route-template.js';
import { POSTHOG_CLIENT, TELEMETRY_OPTIONS } from './telemetry.constants.js';
import { isExcludedPath, type ResolvedTelemetryOptions } from './telemetry.options.js';

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

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

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
  private readonly resolveUser = (state: RequestState) => void this.telemetry.resolveUser(state);
  private readonly listener: RequestListener = (req, res) => this.enter(req, res);
  private server?: { prependListener(event: 'request', l: RequestListener): unknown; off(event: 'request', l: RequestListener): unknown };

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    private readonly telemetry: PostHogTelemetryService,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    this.responseHeader = options.requestIdHeader === 'x-request-id' ? 'X-Request-ID' : options.requestIdHeader;
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
  }

  onApplicationShutdown(): void {
    this.server?.off('request', this.listener);
  }

  private enter(req: IncomingMessage, res: ServerResponse): void {
    if ((req as any)[REQUEST_STATE]) return; // two modules on one server: the first one owns the request
    const startedAt = performance.now();
    let state: RequestState;
    try {
      const headers = req.headers;
      const requestId = resolveRequestId(headers[this.options.requestIdHeader]);
      res.setHeader(this.responseHeader, requestId);
      state = new RequestState(
        requestId,
        req.method ?? 'UNKNOWN',
        startedAt,
        tracingHeader(headers['x-posthog-session-id']),
        tracingHeader(headers['x-posthog-distinct-id']),
        req,
      );
      state.skip = !this.options.enabled || isExcludedPath(pathOf(req.url), this.options.excludePaths);
      (req as any)[REQUEST_STATE] = state;
      // `close` fires once the response is sent, or when the client went away first.
      if (!state.skip) res.once('close', () => this.telemetry.recordRequestEnd(state, res.statusCode, res.writableFinished));
      enterRequestContext(this.posthog, state, this.options.environment, this.resolveUser);
    } catch (error) {
      // Telemetry never stands between a request and the app: it goes on untracked.
      this.telemetry.logOnce('request entry', error);
    }
  }
}

import { Inject, Injectable, NestMiddleware } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { PostHog } from 'posthog-node';
import { PostHogTelemetryService } from './posthog-telemetry.service.js';
import { REQUEST_STATE, RequestState } from './request-context.js';
import { resolveRequestId } from './request-id.js';
import { pathOf } from './route-template.js';
import { POSTHOG_CLIENT, TELEMETRY_OPTIONS } from './telemetry.constants.js';
import { isExcludedPath, type ResolvedTelemetryOptions } from './telemetry.options.js';
import { runInRequestContext } from './posthog-context.js';

/** Longest frontend session or distinct id kept; longer ones are ignored. */
const MAX_TRACING_HEADER = 200;
const CONTROL_CHARS = /[\x00-\x1f\x7f-\x9f]/;

/** A usable tracing header value (posthog-js's `tracing_headers`), or `undefined`. */
function tracingHeader(value: string | string[] | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  if (typeof first !== 'string') return undefined;
  const trimmed = first.trim();
  if (trimmed === '' || trimmed.length > MAX_TRACING_HEADER || CONTROL_CHARS.test(trimmed)) return undefined;
  return trimmed;
}

/**
 * Where a request enters: correlation id (kept or made, and returned), the
 * frontend's PostHog ids, the start time, and the async context in which
 * everything after runs. Nest runs it for every path, on Express and Fastify
 * alike, with Node's own request and response objects.
 */
@Injectable()
export class TelemetryMiddleware implements NestMiddleware {
  private readonly responseHeader: string;
  private readonly resolveUser = (state: RequestState) => void this.telemetry.resolveUser(state);

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    private readonly telemetry: PostHogTelemetryService,
  ) {
    this.responseHeader = options.requestIdHeader === 'x-request-id' ? 'X-Request-ID' : options.requestIdHeader;
  }

  use(req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void): void {
    const existing = (req as any)[REQUEST_STATE] as RequestState | undefined;
    if (existing) return next(); // mounted twice (several imports): the first one owns the request
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
      state.skip = !this.options.enabled || isExcludedPath(pathOf((req as any).originalUrl ?? req.url), this.options.excludePaths);
      (req as any)[REQUEST_STATE] = state;
      // `close` fires once the response is sent, or when the client went away first.
      if (!state.skip) res.once('close', () => this.telemetry.recordRequestEnd(state, res.statusCode, res.writableFinished));
    } catch {
      return next(); // telemetry never stands between a request and the app
    }
    runInRequestContext(this.posthog, state, this.options.environment, this.resolveUser, next);
  }
}

import { Inject, Injectable, Optional } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import type { PostHog } from 'posthog-node';
import { OperationRecorder } from '../events/operation-recorder.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { POSTHOG_CLIENT, SENTRY, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import { Operation, type OperationStart, type UserResolver } from './operation.js';
import { runInRequestContext } from './posthog-context.js';
import { currentOperation } from './request-context.js';
import { resolveRequestId } from './request-id.js';
import { safeUserResolver } from './user-resolver.js';
import { activeTracerSpan, type SentryTraceApi } from '../trace/active-trace.js';
import { parseTraceparent, type TraceStart } from '../trace/trace-context.js';

/** What a transport knows where an operation enters; the rest has defaults. */
export interface OperationInit {
  method: string;
  /** The route template or the transport's name for the operation (`graphql:query GetUser`, `rpc:sum`). */
  endpoint?: string;
  /** The caller's correlation id, kept when valid; otherwise the enclosing operation's, or a new one. */
  requestId?: unknown;
  sessionId?: string;
  frontendDistinctId?: string;
  /** `frontendDistinctId` is a client's unverified claim: personless events. */
  frontendIdClaimed?: boolean;
  rawUrl?: string;
  /** The request the user is read from (`resolveUser`), as the transport has it. */
  request?: unknown;
  skip?: boolean;
  /** Shares nothing with the operation the caller may run in (a new HTTP request on a kept-alive connection). */
  standalone?: boolean;
  /**
   * The caller's W3C `traceparent` (a header, a message's field), continued when valid. Without one, an
   * operation inside another continues that one's trace (its span the parent); else the active span of the
   * app's Sentry or OpenTelemetry gives the trace; else a new trace starts.
   */
  traceparent?: unknown;
}

/**
 * The one owner of operations and of the async context they run in. A
 * transport (http/, and the other adapters) makes an operation where it
 * enters, runs the rest in its context, and finishes it where it ends.
 */
@Injectable()
export class Operations {
  private readonly resolveUser: UserResolver;
  /** `enabled: false`: operations keep their ids and context, and make no events. */
  private readonly off: boolean;

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    private readonly recorder: OperationRecorder,
    failures: TelemetryFailures,
    @Optional() @Inject(SENTRY) private readonly sentry?: SentryTraceApi,
  ) {
    this.resolveUser = safeUserResolver(options.resolveUser, failures);
    this.off = options.mode === 'off';
  }

  /**
   * A new operation. Inside another one (a GraphQL operation in its HTTP
   * request), it shares that one's correlation id, session and frontend id
   * unless the transport brings its own.
   */
  create(init: OperationInit, startedAt = performance.now()): Operation {
    const outer = init.standalone ? undefined : currentOperation();
    const start: OperationStart = {
      requestId: init.requestId === undefined && outer ? outer.requestId : resolveRequestId(init.requestId),
      method: init.method,
      startedAt,
      sessionId: init.sessionId ?? outer?.sessionId,
      frontendDistinctId: init.frontendDistinctId ?? outer?.frontendDistinctId,
      frontendIdClaimed: init.frontendDistinctId !== undefined ? init.frontendIdClaimed : outer?.frontendIdClaimed,
      rawUrl: init.rawUrl,
      request: init.request,
      resolveUser: this.resolveUser,
      skip: this.options.mode === 'off' || init.skip === true,
      trace: this.traceOf(init, outer),
      laterTrace: this.laterTrace,
      onLateError: this.lateError,
    };
    const operation = new Operation(start);
    if (init.endpoint !== undefined) operation.matchRoute(init.endpoint, init.request);
    return operation;
  }

  /**
   * A new HTTP request's operation (http/request-entry.ts): `create` without its generic steps, as every
   * request pays for them. `requestId` is already valid; it shares nothing with the operation the caller runs in.
   */
  createHttp(
    requestId: string,
    method: string,
    sessionId: string | undefined,
    frontendDistinctId: string | undefined,
    frontendIdClaimed: boolean,
    rawUrl: string | undefined,
    request: unknown,
    traceparent: unknown,
    skip: boolean,
    startedAt: number,
  ): Operation {
    return new Operation({
      requestId,
      method,
      startedAt,
      sessionId,
      frontendDistinctId,
      frontendIdClaimed,
      rawUrl,
      request,
      resolveUser: this.resolveUser,
      skip: this.off || skip,
      trace: parseTraceparent(traceparent) ?? activeTracerSpan(this.sentry),
      laterTrace: this.laterTrace,
      onLateError: this.lateError,
    });
  }

  private readonly lateError = (operation: Operation, error: unknown): void => this.recorder.lateError(operation, error);

  private readonly laterTrace = (): ReturnType<typeof activeTracerSpan> => activeTracerSpan(this.sentry);

  /** The trace an operation continues: the caller's, the enclosing operation's, the app's tracer's, or none (a new one). */
  private traceOf(init: OperationInit, outer: Operation | undefined): TraceStart | undefined {
    const caller = parseTraceparent(init.traceparent);
    if (caller) return caller;
    if (outer) return { traceId: outer.traceId, parentSpanId: outer.spanId, flags: outer.traceFlags };
    return activeTracerSpan(this.sentry);
  }

  /**
   * Runs `fn(a, b, c, d)` in the operation's context. Four fixed arguments rather than rest parameters: a
   * request's entry passes its own four, and no array is made for them on the way to the async store.
   */
  run<T>(operation: Operation, fn: () => T): T;
  run<A, B, C, D, T>(operation: Operation, fn: (a: A, b: B, c: C, d: D) => T, a: A, b: B, c: C, d: D): T;
  run<A, B, C, D, T>(operation: Operation, fn: (a?: A, b?: B, c?: C, d?: D) => T, a?: A, b?: B, c?: C, d?: D): T {
    return runInRequestContext(this.posthog, operation, this.options.environment, fn, a, b, c, d);
  }

  /** The operation ends: its events are decided and sent. `sentWhole`: the answer went out to its end. */
  finish(operation: Operation, status: number, sentWhole = true): void {
    this.recorder.finish(operation, status, sentWhole);
  }

  /** The operation the caller runs in. */
  current(): Operation | undefined {
    return currentOperation();
  }
}

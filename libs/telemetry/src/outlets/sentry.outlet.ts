import { Inject, Injectable, Optional } from '@nestjs/common';
import type { Redactor } from '../privacy/redact.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { REDACTOR, SENTRY } from '../telemetry.constants.js';
import { isCapturedBySentry, scrubSentryEvent, type SentryApi, type SentryClient, type SentryScope } from './sentry-bridge.js';

/** What the Sentry event of an error says besides the error. */
export interface SentryReport {
  tags: Record<string, string>;
  userId: string;
  /** Whether code of the app's handled the error (Sentry's "unhandled" filters and priority rely on it). */
  handled: boolean;
  /** Sentry's mechanism type: what caught the error. */
  mechanism: string;
  /** Redaction for this event (the request's raw URL kept out too); the module's redaction otherwise. */
  redact?: Redactor;
  /** The operation's trace: the event's trace context when Sentry has none of its own (no active span). */
  trace?: { traceId: string; spanId?: string; parentSpanId?: string };
}

interface TraceContextOf {
  contexts?: { trace?: { trace_id?: string; span_id?: string; parent_span_id?: string }; [key: string]: unknown };
}

/** Gives an event without a trace of Sentry's own (tracing off) the operation's, so it lines up with the PostHog events. */
function withTrace(trace: NonNullable<SentryReport['trace']>) {
  return <E>(event: E): E => {
    const traced = event as E & TraceContextOf;
    if (traced.contexts?.trace?.trace_id !== undefined) return event;
    const context: Record<string, string> = { trace_id: trace.traceId };
    if (trace.spanId !== undefined) context.span_id = trace.spanId;
    if (trace.parentSpanId !== undefined) context.parent_span_id = trace.parentSpanId;
    traced.contexts = { ...traced.contexts, trace: context };
    return event;
  };
}

/** What Sentry made of one capture, as far as is known when `captureException` returns. */
interface Dispatch {
  id: string;
  /** `sent`: Sentry queued it for delivery; `dropped`: it sent none (Dedupe, a filter, sampling); `pending`: still in Sentry's processors. */
  state: 'sent' | 'dropped' | 'pending';
  /** Sentry's own task for it, settling with the id of the event sent or `undefined`. */
  task?: PromiseLike<unknown>;
}

/** Longest wait for Sentry's verdict on one event when its task cannot be read (another `@sentry/node` than the one this was written for). */
const VERDICT_TIMEOUT_MS = 30_000;

/**
 * Sentry alongside PostHog: an error, once, on a scope of its own (tags of one
 * request never reach another's event), scrubbed of what Sentry attaches by
 * itself. It reads; the caller links the `api_error` with the event id, and
 * only with the id of an event Sentry sent: Sentry's Dedupe drops an event like
 * the one before it (an error thrown again by the next request), `sampleRate`,
 * `ignoreErrors` and `beforeSend` drop others, and `captureException` names an
 * id either way.
 */
@Injectable()
export class SentryOutlet {
  /** Ids of the events Sentry queued for delivery during the `captureException` call under way. */
  private queuedNow?: Set<string>;
  /** Events waiting for Sentry's verdict without a task to read, by id. */
  private readonly waiting = new Map<string, (id: string | undefined) => void>();
  private readonly hooked = new WeakSet<object>();

  constructor(
    @Inject(REDACTOR) private readonly redact: Redactor,
    private readonly failures: TelemetryFailures,
    @Optional() @Inject(SENTRY) private readonly sentry?: SentryApi,
  ) {}

  /**
   * The id of the Sentry event sent for this error; `undefined` without Sentry,
   * when Sentry already captured this error object, or when Sentry decided to
   * send nothing before `captureException` returned (Dedupe, `ignoreErrors`,
   * sampling). An event still in Sentry's asynchronous processors (source
   * lines) when it returns is named: `capture` waits for the verdict.
   */
  send(error: unknown, report: SentryReport): string | undefined {
    const dispatch = this.dispatch(error, report);
    return dispatch && dispatch.state !== 'dropped' ? dispatch.id : undefined;
  }

  /**
   * As `send`, settling once Sentry decided: the id when it queued the event
   * for delivery, `undefined` when it sent none (also for `beforeSend`, or an
   * event processor of the app's, that returned `null`).
   */
  capture(error: unknown, report: SentryReport): Promise<string | undefined> {
    const dispatch = this.dispatch(error, report);
    if (!dispatch || dispatch.state !== 'pending') return Promise.resolve(dispatch?.state === 'sent' ? dispatch.id : undefined);
    const { id, task } = dispatch;
    if (task) {
      return Promise.resolve(task).then(
        (sent) => (this.waiting.delete(id), typeof sent === 'string' ? id : undefined),
        () => (this.waiting.delete(id), undefined),
      );
    }
    return new Promise((settle) => {
      const timer = setTimeout(() => this.waiting.get(id)?.(undefined), VERDICT_TIMEOUT_MS);
      timer.unref?.();
      this.waiting.set(id, (sent) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        settle(sent);
      });
    });
  }

  private dispatch(error: unknown, report: SentryReport): Dispatch | undefined {
    if (!this.sentry || isCapturedBySentry(error)) return undefined;
    const scrub = scrubSentryEvent(report.redact ?? this.redact, { endpoint: report.tags.endpoint, frames: this.redact });
    const client = this.clientOf(this.sentry);
    const tasks = tasksOf(client);
    const before = tasks && new Set(tasks);
    const queued = new Set<string>();
    this.queuedNow = queued;
    let id: string;
    try {
      id = this.sentry.captureException(error, {
        mechanism: { type: report.mechanism, handled: report.handled },
        captureContext: (scope: SentryScope) => {
          scope.setTags(report.tags);
          scope.setUser(report.userId === 'anonymous' ? null : { id: report.userId });
          scope.addEventProcessor(scrub);
          if (report.trace) scope.addEventProcessor(withTrace(report.trace));
          return scope;
        },
      });
    } catch (failure) {
      this.failures.report('Sentry captureException', failure);
      return undefined;
    } finally {
      this.queuedNow = undefined;
    }
    if (queued.has(id)) return { id, state: 'sent' };
    if (before === undefined) return { id, state: 'pending' };
    // Sentry's processing runs synchronously up to its first asynchronous processor: a task already gone from
    // its queue, with no event queued for delivery, settled without sending (Dedupe, a filter, sampling).
    const task = tasksOf(client)?.find((candidate) => !before.has(candidate));
    return task ? { id, state: 'pending', task } : { id, state: 'dropped' };
  }

  /** The Sentry client, with the module's `beforeSendEvent` hook on it (once). */
  private clientOf(sentry: SentryApi): SentryClient | undefined {
    try {
      const client = sentry.getClient() as SentryClient | undefined;
      if (!client || typeof client !== 'object' || this.hooked.has(client)) return client;
      this.hooked.add(client);
      client.on?.('beforeSendEvent', (event) => {
        const id = event?.event_id;
        if (typeof id !== 'string') return;
        this.queuedNow?.add(id);
        this.waiting.get(id)?.(id);
      });
      return client;
    } catch {
      return undefined;
    }
  }
}

/** The tasks in Sentry's processing queue, when this `@sentry/node` lets them be read. */
function tasksOf(client: SentryClient | undefined): readonly PromiseLike<unknown>[] | undefined {
  try {
    const tasks = client?._promiseBuffer?.$;
    return Array.isArray(tasks) ? tasks : undefined;
  } catch {
    return undefined;
  }
}

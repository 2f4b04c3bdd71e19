import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { PostHog } from 'posthog-node';
import { APP_CAPTURED, ErrorReporter, type CaptureErrorInput } from './errors/error-reporter.js';
import { Identities } from './events/identities.js';
import { customEvent } from './events/telemetry-events.js';
import { EventsOutlet } from './outlets/events.outlet.js';
import type { SentryApi } from './outlets/sentry-bridge.js';
import type { Redactor } from './privacy/redact.js';
import { getRequestContext, registerContextSource, type TelemetryRequestContext } from './request/request-context.js';
import { TelemetryFailures } from './telemetry-failures.js';
import { EVENT_SINK, POSTHOG_CLIENT, REDACTOR, SENTRY, TELEMETRY_OPTIONS } from './telemetry.constants.js';
import type { ResolvedTelemetryOptions } from './telemetry.options.js';
import type { EventSink } from './transport/event-sink.js';

export type { CaptureErrorInput } from './errors/error-reporter.js';

/**
 * The module's public face: the app's own events and errors, the current
 * request's context, and delivery. Inject it anywhere (the module is global).
 * Nothing here throws into the app.
 */
@Injectable()
export class TelemetryService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Telemetry');
  private readonly unregister: () => void;
  private shutDown?: Promise<void>;

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    @Inject(EVENT_SINK) private readonly sink: EventSink,
    @Inject(REDACTOR) private readonly redact: Redactor,
    private readonly identities: Identities,
    private readonly events: EventsOutlet,
    private readonly errors: ErrorReporter,
    private readonly failures: TelemetryFailures,
    @Optional() @Inject(SENTRY) private readonly sentry?: SentryApi,
  ) {
    // The shared client's context is where `getRequestContext()` finds the running request.
    this.unregister = registerContextSource(posthog);
  }

  /** The current request's correlation id, user and session, or `undefined` outside a request. */
  getRequestContext(): TelemetryRequestContext | undefined {
    return getRequestContext();
  }

  /** Sends an event of the app's own; inside a request it carries the request's `request_id`, user, session and `environment`. */
  capture(event: string, properties?: Record<string, unknown>): void {
    try {
      const identity = this.identities.current();
      if (identity) this.events.send(customEvent(event, identity, properties, this.redact));
    } catch (error) {
      this.failures.report('capture', error);
    }
  }

  /**
   * Sends an `api_error` for an error the app handled itself (a caught
   * failure, a job of its own), with its `$exception` and Sentry event as for a
   * request's error (status 500 unless given).
   */
  captureError(error: unknown, input: CaptureErrorInput = {}): void {
    try {
      this.errors.reportCaptured(error, input, APP_CAPTURED);
    } catch (failure) {
      this.failures.report('captureError', failure);
    }
  }

  /** Delivers every queued event now (the module's own and the posthog-node client's). */
  async flush(): Promise<void> {
    await Promise.allSettled([this.sink.flush(), this.posthog.flush(), this.sentry?.flush(this.options.shutdownTimeoutMs)]);
  }

  /** Delivers every queued event, for at most `shutdownTimeoutMs`, and stops. Called by `app.close()`. */
  shutdown(): Promise<void> {
    this.shutDown ??= this.shutdownOnce();
    return this.shutDown;
  }

  onApplicationBootstrap(): void {
    if (this.options.mode === 'local') this.logger.log('No POSTHOG_API_KEY: local mode, each event is logged here and nothing is sent.');
  }

  async onApplicationShutdown(): Promise<void> {
    await this.shutdown();
  }

  private async shutdownOnce(): Promise<void> {
    const timeoutMs = this.options.shutdownTimeoutMs;
    try {
      await Promise.allSettled([this.sink.shutdown(timeoutMs), this.posthog.shutdown(timeoutMs), this.sentry?.flush(timeoutMs)]);
    } finally {
      this.unregister();
    }
  }
}

import { Inject, Injectable } from '@nestjs/common';
import type { PostHog } from 'posthog-node';
import { TelemetryFailures } from '../telemetry-failures.js';
import { EVENT_SINK, POSTHOG_CLIENT, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import type { EventSink } from '../transport/event-sink.js';
import { captureExceptionOnce } from './posthog-client.js';

/**
 * PostHog Error Tracking: an error through posthog-node's `captureException`
 * (an `$exception` with parsed stack frames, built by posthog-node and queued
 * by the module's sender), with the correlation properties it is given. It
 * tells the caller the uuid of that `$exception` once it is queued, for the link.
 */
@Injectable()
export class ErrorTrackingOutlet {
  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    @Inject(EVENT_SINK) private readonly sink: EventSink,
    private readonly failures: TelemetryFailures,
  ) {}

  /**
   * Sends `error` (an error object goes once), then calls `linked` with the
   * uuid of the `$exception` that names it once that is queued (now or
   * earlier), or with `undefined` when none is: local mode, an error
   * posthog-node skips or cannot read, a `before_send` that drops it, a
   * failing client. `linked` runs synchronously when the answer is known at
   * once; otherwise the sink's flush and shutdown wait for it.
   */
  send(error: unknown, distinctId: string, properties: Record<string, unknown>, linked: (exceptionUuid: string | undefined) => void): void {
    if (this.options.mode !== 'posthog') return linked(undefined);
    let queued: Promise<string | undefined>;
    try {
      queued = captureExceptionOnce(this.posthog, error, distinctId, properties);
    } catch (failure) {
      this.failures.report('captureException', failure);
      return linked(undefined);
    }
    const done = queued
      .then(linked, () => linked(undefined))
      .catch((failure: unknown) => this.failures.report('captureException', failure));
    this.sink.hold?.(done);
  }
}

import { Inject, Injectable } from '@nestjs/common';
import type { PostHog } from 'posthog-node';
import { TelemetryFailures } from '../telemetry-failures.js';
import { POSTHOG_CLIENT, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import { captureExceptionOnce } from './posthog-client.js';

/**
 * PostHog Error Tracking: an error through posthog-node's `captureException`
 * (an `$exception` with parsed stack frames), with the correlation properties
 * it is given. It reads; the caller links the `api_error` with the uuid it returns.
 */
@Injectable()
export class ErrorTrackingOutlet {
  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    private readonly failures: TelemetryFailures,
  ) {}

  /**
   * The uuid of the `$exception` that names this error: sent now, or earlier
   * (an error object goes once); `undefined` when none was (local mode, an
   * error posthog-node skips, a failing client).
   */
  send(error: unknown, distinctId: string, properties: Record<string, unknown>): string | undefined {
    if (this.options.mode !== 'posthog') return undefined;
    try {
      return captureExceptionOnce(this.posthog, error, distinctId, properties);
    } catch (failure) {
      this.failures.report('captureException', failure);
      return undefined;
    }
  }
}

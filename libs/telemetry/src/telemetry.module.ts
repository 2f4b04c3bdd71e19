import { Module } from '@nestjs/common';
import { APP_GUARD, DiscoveryModule } from '@nestjs/core';
import type { EventSink } from './event-sink.js';
import { LocalLogSink } from './local-log-sink.js';
import { PostHogBatchSender } from './posthog-batch-sender.js';
import { createPostHogClient } from './posthog-client.js';
import { TelemetryFailures } from './telemetry-failures.js';
import { PostHogTelemetryService } from './posthog-telemetry.service.js';
import { EVENT_SINK, POSTHOG_CLIENT, SENTRY, TELEMETRY_OPTIONS } from './telemetry.constants.js';
import { connectSentry } from './sentry-bridge.js';
import { TelemetryGuard } from './telemetry.guard.js';
import { RequestEntry } from './request-entry.js';
import { JobErrorsExplorer } from './jobs/job-errors.explorer.js';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableTelemetryModule,
  OPTIONS_TYPE,
  TELEMETRY_MODULE_OPTIONS,
} from './telemetry.module-definition.js';
import { resolveTelemetryOptions, type ResolvedTelemetryOptions, type TelemetryModuleOptions } from './telemetry.options.js';

/** Defaults of the module's own sender, each overridable through `posthogOptions`. */
const SENDER_DEFAULTS = {
  flushAt: 100,
  flushInterval: 1000,
  maxQueueSize: 10_000,
  requestTimeout: 10_000,
  fetchRetryCount: 3,
  fetchRetryDelay: 1000,
};

function createEventSink(options: ResolvedTelemetryOptions): EventSink {
  if (options.apiKey === undefined || !options.enabled) return new LocalLogSink();
  const p = { ...SENDER_DEFAULTS, ...options.posthogOptions };
  return new PostHogBatchSender({
    host: options.host,
    apiKey: options.apiKey,
    flushAt: Math.max(1, p.flushAt),
    flushIntervalMs: p.flushInterval,
    maxQueueSize: Math.max(1, p.maxQueueSize),
    maxBatchSize: Math.max(p.flushAt, 1000),
    requestTimeoutMs: p.requestTimeout,
    retryCount: p.fetchRetryCount,
    retryDelayMs: p.fetchRetryDelay,
    compression: p.disableCompression !== true,
  });
}

/**
 * PostHog telemetry for the whole app from one import:
 * `TelemetryModule.forRoot()` (options from the environment) or
 * `TelemetryModule.forRootAsync({ inject, useFactory })`. Global by default.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: TELEMETRY_OPTIONS,
      inject: [TELEMETRY_MODULE_OPTIONS],
      useFactory: (options: TelemetryModuleOptions) => resolveTelemetryOptions(options),
    },
    TelemetryFailures,
    { provide: POSTHOG_CLIENT, inject: [TELEMETRY_OPTIONS, TelemetryFailures], useFactory: createPostHogClient },
    { provide: EVENT_SINK, inject: [TELEMETRY_OPTIONS], useFactory: createEventSink },
    { provide: SENTRY, inject: [TELEMETRY_OPTIONS], useFactory: connectSentry },
    PostHogTelemetryService,
    RequestEntry,
    JobErrorsExplorer,
    { provide: APP_GUARD, useClass: TelemetryGuard },
  ],
  exports: [PostHogTelemetryService, POSTHOG_CLIENT],
})
export class TelemetryModule extends ConfigurableTelemetryModule {
  /** Options are optional: with none, everything comes from the environment. */
  static forRoot(options: typeof OPTIONS_TYPE = {}) {
    return super.forRoot(options);
  }

  static forRootAsync(options: typeof ASYNC_OPTIONS_TYPE) {
    return super.forRootAsync(options);
  }
}

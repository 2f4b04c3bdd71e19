import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { POSTHOG_CLIENT } from './telemetry.constants.js';
import { TELEMETRY_PROVIDERS } from './telemetry.providers.js';
import { TelemetryService } from './telemetry.service.js';
import { ASYNC_OPTIONS_TYPE, ConfigurableTelemetryModule, OPTIONS_TYPE } from './telemetry.module-definition.js';

/**
 * PostHog telemetry for the whole app from one import:
 * `TelemetryModule.forRoot()` (options from the environment) or
 * `TelemetryModule.forRootAsync({ inject, useFactory })`. Global by default.
 */
@Module({
  imports: [DiscoveryModule],
  providers: TELEMETRY_PROVIDERS,
  exports: [TelemetryService, POSTHOG_CLIENT],
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

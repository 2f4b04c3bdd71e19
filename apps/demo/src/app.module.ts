import { Module } from '@nestjs/common';
import { TelemetryModule } from 'nestjs-posthog-telemetry';
import { DemoModule } from './demo.module.js';

/**
 * The whole setup: one import. Options come from the environment
 * (POSTHOG_API_KEY, POSTHOG_HOST, SLOW_THRESHOLD, POSTHOG_INTERNAL_DOMAINS);
 * with no key the module logs each event instead of sending it.
 */
@Module({
  imports: [TelemetryModule.forRoot(), DemoModule],
})
export class AppModule {}

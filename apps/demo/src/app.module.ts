import { Module, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { TelemetryModule } from 'nestjs-posthog-telemetry';
import { DemoSessionMiddleware } from './demo-session.middleware.js';
import { DemoModule } from './demo.module.js';

/**
 * The whole setup: one import. Options come from the environment
 * (POSTHOG_API_KEY, POSTHOG_HOST, SLOW_THRESHOLD, POSTHOG_INTERNAL_DOMAINS);
 * with no key the module logs each event instead of sending it.
 */
@Module({
  imports: [TelemetryModule.forRoot(), DemoModule],
})
export class AppModule implements NestModule {
  /** A signed-in visitor is known on every route, as behind an app's own auth layer: its events carry the user. */
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(DemoSessionMiddleware).forRoutes('{*splat}');
  }
}

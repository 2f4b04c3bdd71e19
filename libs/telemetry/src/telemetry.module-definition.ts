import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { TelemetryModuleOptions } from './telemetry.options.js';

export interface TelemetryModuleExtras {
  /** Register the module globally (default `true`), so `TelemetryService` and `POSTHOG_CLIENT` inject anywhere. */
  isGlobal?: boolean;
}

export const {
  ConfigurableModuleClass: ConfigurableTelemetryModule,
  MODULE_OPTIONS_TOKEN: TELEMETRY_MODULE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<TelemetryModuleOptions>({ moduleName: 'Telemetry' })
  .setClassMethodName('forRoot')
  .setExtras<TelemetryModuleExtras>({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

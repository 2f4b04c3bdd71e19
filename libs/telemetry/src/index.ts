export { TelemetryModule } from './telemetry.module.js';
export type { TelemetryModuleExtras } from './telemetry.module-definition.js';
export {
  PostHogTelemetryService,
  type CaptureApiRequestInput,
  type CaptureErrorInput,
  type CaptureSlowRequestInput,
} from './posthog-telemetry.service.js';
export { SkipTelemetry } from './skip-telemetry.decorator.js';
export { noteException, TelemetryExceptionCaptured } from './exception-captured.decorator.js';
export { ignoreError, type IgnoreErrorRule } from './ignored-errors.js';
export { getRequestContext, requestIdOf, type TelemetryRequestContext } from './request-context.js';
export { POSTHOG_CLIENT } from './telemetry.constants.js';
export {
  DEFAULT_EXCLUDE_PATHS,
  type CategorizeError,
  type TelemetryModuleOptions,
  type TelemetryUser,
} from './telemetry.options.js';
export { ErrorCategory, categorizeError, type ErrorCategoryRule } from './error-categorizer.js';
export { isValidRequestId } from './request-id.js';
export { UNMATCHED_ROUTE } from './route-template.js';
export { redactEmails, redactSecrets, REDACTED, type RedactOption } from './redact.js';
export type { TelemetryEvent } from './telemetry-events.js';

export { TelemetryModule } from './telemetry.module.js';
export type { TelemetryModuleExtras } from './telemetry.module-definition.js';
export { TelemetryService, type CaptureErrorInput } from './telemetry.service.js';
export { SkipTelemetry } from './http/skip-telemetry.decorator.js';
export { noteException, TelemetryExceptionCaptured } from './errors/exception-captured.decorator.js';
export { ignoreError, type IgnoreErrorRule } from './errors/ignored-errors.js';
export { getRequestContext, requestIdOf, type TelemetryRequestContext } from './request/request-context.js';
export { POSTHOG_CLIENT } from './telemetry.constants.js';
export {
  DEFAULT_EXCLUDE_PATHS,
  DEFAULT_STATIC_PATHS,
  type CategorizeError,
  type TelemetryModuleOptions,
  type TelemetryUser,
} from './telemetry.options.js';
export { ErrorCategory, categorizeError, type ErrorCategoryRule } from './errors/error-categorizer.js';
export { isValidRequestId } from './request/request-id.js';
export type { FrontendIdentityPolicy } from './request/frontend-identity.js';
export { UNMATCHED_ROUTE } from './http/route-template.js';
export { redactEmails, redactSecrets, REDACTED, type RedactOption } from './privacy/redact.js';
export type { TelemetryEvent } from './events/telemetry-events.js';
export { telemetryLogFields, currentTraceparent, type TelemetryLogFields } from './trace/log-fields.js';
export { RPC_DISTINCT_ID, RPC_REQUEST_ID, RPC_SESSION_ID, RPC_TRACEPARENT } from './rpc/rpc-correlation.js';

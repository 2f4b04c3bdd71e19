/** Injection token of the posthog-node client the module created: `@Inject(POSTHOG_CLIENT) posthog: PostHog`. */
export const POSTHOG_CLIENT = Symbol.for('nestjs-posthog-telemetry.posthog-client');
/** Injection token of the options with defaults and environment applied. Internal. */
export const TELEMETRY_OPTIONS = Symbol.for('nestjs-posthog-telemetry.options');
/** Injection token of the event sink (PostHog batches or local log lines). Internal. */
export const EVENT_SINK = Symbol.for('nestjs-posthog-telemetry.event-sink');
/** Metadata key set by `@SkipTelemetry()`. */
export const SKIP_TELEMETRY = 'nestjs-posthog-telemetry:skip';
/** Injection token of the Sentry API (`@sentry/node`), or `undefined` without Sentry. Internal. */
export const SENTRY = Symbol.for('nestjs-posthog-telemetry.sentry');
/** Injection token of the one redaction every outlet applies (`Redactor`). Internal. */
export const REDACTOR = Symbol.for('nestjs-posthog-telemetry.redactor');

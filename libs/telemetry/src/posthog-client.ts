import { PostHog } from 'posthog-node';
import { composeRedactor } from './redact.js';
import type { TelemetryFailures } from './telemetry-failures.js';
import type { ResolvedTelemetryOptions } from './telemetry.options.js';

type PostHogEvent = { event: string; properties?: Record<string, any> };
type BeforeSend = (event: any) => any;

/**
 * Redacts what posthog-node attaches to an `$exception` on its own: the
 * messages in `$exception_list` and the source lines around each stack frame.
 */
export function scrubException(redact: (text: string) => string): BeforeSend {
  const clean = (value: unknown) => (typeof value === 'string' ? redact(value) : value);
  return (event: PostHogEvent) => {
    const list = event?.event === '$exception' ? event.properties?.$exception_list : undefined;
    if (!Array.isArray(list)) return event;
    for (const exception of list) {
      exception.value = clean(exception.value);
      for (const frame of exception.stacktrace?.frames ?? []) {
        frame.context_line = clean(frame.context_line);
        if (Array.isArray(frame.pre_context)) frame.pre_context = frame.pre_context.map(clean);
        if (Array.isArray(frame.post_context)) frame.post_context = frame.post_context.map(clean);
      }
    }
    return event;
  };
}

/**
 * The posthog-node client the module shares with the app (`POSTHOG_CLIENT`):
 * the request context lives in it, and it sends the app's own captures and
 * `$exception`s, scrubbed before the app's own `before_send` runs. In local
 * mode it is disabled: it still carries the context, and sends nothing.
 */
export function createPostHogClient(options: ResolvedTelemetryOptions, failures: TelemetryFailures): PostHog {
  if (options.apiKey === undefined || !options.enabled) {
    return new PostHog('phc_local_mode', { ...options.posthogOptions, host: 'http://127.0.0.1:9', disabled: true });
  }
  const redact = composeRedactor(options.redact, (error) => failures.report('redact', error), options.redactEmails);
  const own = options.posthogOptions.before_send;
  const beforeSend = [scrubException(redact), ...(own === undefined ? [] : Array.isArray(own) ? own : [own])];
  return new PostHog(options.apiKey, {
    host: options.host,
    ...(options.captureProcessErrors ? { enableExceptionAutocapture: true } : {}),
    ...options.posthogOptions,
    before_send: beforeSend,
  });
}

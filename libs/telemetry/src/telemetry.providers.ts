import type { Provider } from '@nestjs/common';
import type { PostHog } from 'posthog-node';
import { ErrorReporter } from './errors/error-reporter.js';
import { Identities } from './events/identities.js';
import { OperationRecorder } from './events/operation-recorder.js';
import { Operations } from './request/operations.js';
import { OutboundPropagation } from './outbound/outbound-propagation.js';
import { RequestEntry } from './http/request-entry.js';
import { JobErrorsExplorer } from './jobs/job-errors.explorer.js';
import { GraphqlTelemetry } from './graphql/graphql-telemetry.js';
import { RPC_ENTRY_PROVIDER } from './rpc/rpc-entry.js';
import { WS_PACKAGE_PROVIDER, WsTelemetry } from './ws/ws-telemetry.js';
import { ErrorTrackingOutlet } from './outlets/error-tracking.outlet.js';
import { EventsOutlet } from './outlets/events.outlet.js';
import { createPostHogClient, SharedPostHog } from './outlets/posthog-client.js';
import { connectSentry, untracedBy, type SentryApi } from './outlets/sentry-bridge.js';
import { SentryOutlet } from './outlets/sentry.outlet.js';
import { composeRedactor, type Redactor } from './privacy/redact.js';
import { TelemetryFailures } from './telemetry-failures.js';
import { EVENT_SINK, POSTHOG_CLIENT, REDACTOR, SENTRY, TELEMETRY_OPTIONS } from './telemetry.constants.js';
import { TELEMETRY_MODULE_OPTIONS } from './telemetry.module-definition.js';
import { resolveTelemetryOptions, type ResolvedTelemetryOptions, type TelemetryModuleOptions } from './telemetry.options.js';
import { TelemetryService } from './telemetry.service.js';
import type { EventSink } from './transport/event-sink.js';
import { LocalLogSink } from './transport/local-log.sink.js';
import { PostHogBatchSender } from './transport/posthog-batch-sender.js';

/** The one sender of the module's own events: PostHog batches, or the log in local mode. */
function createEventSink(options: ResolvedTelemetryOptions, sentry: SentryApi | undefined, posthog: PostHog): EventSink {
  // Without a key the mode is never `posthog`.
  if (options.mode !== 'posthog' || options.apiKey === undefined) return new LocalLogSink();
  // Its queue and posthog-node's share one byte budget (`maxQueueBytes`).
  const budget = posthog instanceof SharedPostHog ? posthog.queueBudget : undefined;
  const sender = new PostHogBatchSender({ host: options.host, apiKey: options.apiKey, ...options.sender, budget });
  // posthog-node's `$exception`s are queued by the sender too: the same outage guarantees, and a link names a queued event.
  if (posthog instanceof SharedPostHog) posthog.routeExceptionsTo(sender);
  // Its deliveries never join the app's Sentry traces.
  const untraced = untracedBy(sentry);
  if (untraced) sender.untraced = untraced;
  return sender;
}

/** Everything `TelemetryModule` provides; options are resolved once, here. */
export const TELEMETRY_PROVIDERS: Provider[] = [
  {
    provide: TELEMETRY_OPTIONS,
    inject: [TELEMETRY_MODULE_OPTIONS],
    useFactory: (options: TelemetryModuleOptions) => resolveTelemetryOptions(options),
  },
  TelemetryFailures,
  {
    provide: REDACTOR,
    inject: [TELEMETRY_OPTIONS, TelemetryFailures],
    useFactory: (options: ResolvedTelemetryOptions, failures: TelemetryFailures) =>
      composeRedactor(options.redact, (error) => failures.report('redact', error), options.redactEmails),
  },
  // A plain object, not `@sentry/node`'s module namespace (no prototype, no `constructor`): libraries that scan
  // every provider, such as @nestjs/graphql's scalar explorer (`Reflect.getMetadata(key, instance.constructor)`), throw on one.
  {
    provide: SENTRY,
    inject: [TELEMETRY_OPTIONS, REDACTOR],
    useFactory: async (options: ResolvedTelemetryOptions, redact: Redactor) => {
      const sentry = await connectSentry(options, redact);
      return sentry && ({ ...sentry } as SentryApi);
    },
  },
  { provide: POSTHOG_CLIENT, inject: [TELEMETRY_OPTIONS, REDACTOR, SENTRY], useFactory: createPostHogClient },
  { provide: EVENT_SINK, inject: [TELEMETRY_OPTIONS, SENTRY, POSTHOG_CLIENT], useFactory: createEventSink },
  EventsOutlet,
  ErrorTrackingOutlet,
  SentryOutlet,
  Identities,
  ErrorReporter,
  OperationRecorder,
  Operations,
  TelemetryService,
  RequestEntry,
  JobErrorsExplorer,
  GraphqlTelemetry,
  RPC_ENTRY_PROVIDER,
  WS_PACKAGE_PROVIDER,
  WsTelemetry,
  OutboundPropagation,
];

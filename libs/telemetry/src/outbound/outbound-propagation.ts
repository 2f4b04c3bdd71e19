import { Inject, Injectable, Optional, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { PostHog } from 'posthog-node';
import { Operation } from '../request/operation.js';
import { OPERATION } from '../request/request-context.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { POSTHOG_CLIENT, SENTRY, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import { traceparentOf } from '../trace/trace-context.js';
import { onOutgoingCall, type OutgoingCall } from './client-hooks.js';
import { propagationTargets } from './propagation-targets.js';

/** Sentry's ingestion endpoint, whichever Sentry sends it (one the module did not find, a relay). */
const SENTRY_ENVELOPE = /^[a-z]+:\/\/[^/]+(?:\/[^?#]*)?\/api\/[^/?#]+\/envelope\/?(?:[?#]|$)/i;

/** The `@sentry/node` client's DSN, as far as read here. */
interface SentryWithDsn {
  getClient?(): { getDsn?(): { protocol?: string; host?: string; port?: string } | undefined } | undefined;
}

/**
 * Outbound propagation: every HTTP call made while one of this module's
 * operations runs (fetch/undici, node:http/https) gets the operation's
 * correlation id and `traceparent`, unless the app set them, the host is not
 * one of `propagateTo`, or it is the module's PostHog or Sentry.
 *
 * The operation is read from this module's own posthog-node context: the
 * module's deliveries (its sender and the shared client) run outside every
 * operation's context, and another module in the process (another app) sees
 * only its own operations.
 */
@Injectable()
export class OutboundPropagation implements OnModuleInit, OnApplicationShutdown {
  private stop?: () => void;
  private readonly header: string;
  private readonly allowed: (url: string) => boolean;

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    private readonly failures: TelemetryFailures,
    @Optional() @Inject(SENTRY) private readonly sentry?: SentryWithDsn,
  ) {
    this.header = options.requestIdHeader === 'x-request-id' ? 'X-Request-ID' : options.requestIdHeader;
    this.allowed = propagationTargets(options.propagateTo, () => [options.host, this.sentryOrigin()]);
  }

  onModuleInit(): void {
    if (!this.options.propagate) return;
    this.stop = onOutgoingCall((call) => this.propagate(call));
  }

  onApplicationShutdown(): void {
    this.stop?.();
    this.stop = undefined;
  }

  private propagate(call: OutgoingCall): void {
    try {
      const operation = (this.posthog.getContext()?.properties as Record<PropertyKey, unknown> | undefined)?.[OPERATION];
      if (!(operation instanceof Operation)) return;
      const url = call.url();
      if (url === undefined || SENTRY_ENVELOPE.test(url) || !this.allowed(url)) return;
      if (!call.has(this.header)) call.add(this.header, operation.requestId);
      if (!call.has('traceparent')) call.add('traceparent', traceparentOf(operation));
    } catch (error) {
      this.failures.report('outbound propagation', error);
    }
  }

  /** The origin Sentry's events go to (its DSN's), read when a call is made: the app may init Sentry late. */
  private sentryOrigin(): string | undefined {
    try {
      const dsn = this.sentry?.getClient?.()?.getDsn?.();
      if (!dsn?.host) return undefined;
      return `${dsn.protocol ?? 'https'}://${dsn.host}${dsn.port ? ':' + dsn.port : ''}`;
    } catch {
      return undefined;
    }
  }
}

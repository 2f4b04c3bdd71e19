import { Inject, Injectable } from '@nestjs/common';
import type { PostHog } from 'posthog-node';
import { currentJobRun } from '../jobs/job-run.js';
import type { Operation } from '../request/operation.js';
import { currentOperation } from '../request/request-context.js';
import { POSTHOG_CLIENT, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions, TelemetryUser } from '../telemetry.options.js';
import type { EventIdentity } from './telemetry-events.js';

/** Who an event belongs to: an operation's user, session and correlation id, or the process's. */
@Injectable()
export class Identities {
  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
  ) {}

  /** The identity of an operation's events; `undefined`: send nothing (an internal user, dropped). */
  of(operation: Operation): EventIdentity | undefined {
    const user = operation.user;
    const internal = user?.email !== undefined && this.isInternal(user);
    if (internal && this.options.internalUsers === 'drop') return undefined;
    return {
      // From the one read of the user above: the distinct id and whether the module made it agree.
      distinctId: user !== undefined ? user.id : operation.unidentifiedDistinctId,
      madeDistinctId: user === undefined && operation.frontendDistinctId === undefined,
      requestId: operation.requestId,
      userId: user !== undefined ? user.id : 'anonymous',
      environment: this.options.environment,
      sessionId: operation.sessionId,
      personless: operation.personless,
      internalUser: internal,
      traceId: operation.traceId,
      spanId: operation.spanId,
      parentSpanId: operation.parentSpanId,
    };
  }

  /** Identity of an event sent now: the running operation's, or the process's outside them. `undefined`: drop it. */
  current(): EventIdentity | undefined {
    if (this.options.mode === 'off') return undefined;
    const operation = currentOperation();
    if (operation) return operation.skip ? undefined : this.of(operation);
    // The process's, under the correlation id of the scheduled job or event handler running (jobs/), if any.
    const requestId = currentJobRun(this.posthog)?.requestId;
    return { distinctId: 'server', requestId, userId: 'anonymous', environment: this.options.environment, personless: true };
  }

  private isInternal(user: TelemetryUser | undefined): boolean {
    const email = user?.email;
    if (!email || this.options.internalDomains.length === 0) return false;
    const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase();
    return this.options.internalDomains.some((d) => domain === d || domain.endsWith('.' + d));
  }
}

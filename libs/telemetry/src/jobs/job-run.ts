import { randomUUID } from 'node:crypto';
import type { PostHog } from 'posthog-node';

/** Where a run rides in the posthog-node context: under a symbol key, never serialised. */
const JOB_RUN = Symbol.for('nestjs-posthog-telemetry.job-run');

/**
 * One run of a scheduled job, or of an event handler called outside any
 * request: its own correlation id, as a request has one.
 */
export class JobRun {
  readonly requestId = randomUUID();

  constructor(
    /** `cron:<name>`, `event:<event>`… (job-method.ts). */
    readonly endpoint: string,
    /** `CRON`, `INTERVAL`, `TIMEOUT` or `EVENT`. */
    readonly method: string,
  ) {}
}

type ContextClient = Pick<PostHog, 'getContext'>;

/** The run the caller is in, found through the module's posthog-node context; `undefined` outside runs. */
export function currentJobRun(posthog: ContextClient): JobRun | undefined {
  const run = (posthog.getContext()?.properties as Record<PropertyKey, unknown> | undefined)?.[JOB_RUN];
  return run instanceof JobRun ? run : undefined;
}

/**
 * Runs `fn` as `run`, in a fresh posthog-node context: whatever the job
 * captures itself (`posthog.capture`, the module's `capture` and
 * `captureError`) carries the run's `request_id` and the process's
 * `distinct_id`, `server`, without a person profile, as the module's own
 * events outside requests do.
 */
export function inJobRun<T>(posthog: Pick<PostHog, 'withContext'>, run: JobRun, environment: string, fn: () => T): T {
  const properties: Record<PropertyKey, unknown> = {
    request_id: run.requestId,
    environment,
    $process_person_profile: false,
    [JOB_RUN]: run,
  };
  return posthog.withContext({ distinctId: 'server', properties: properties as Record<string, unknown> }, fn, { fresh: true });
}

const reported = new WeakSet<object>();

/**
 * True the first time an error is reported from a run: an error rethrown
 * through nested runs (an event handler awaited by a scheduled job) is reported once.
 */
export function firstReport(error: unknown): boolean {
  if (error === null || (typeof error !== 'object' && typeof error !== 'function')) return true;
  if (reported.has(error)) return false;
  reported.add(error);
  return true;
}

import { Inject, Injectable, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { PostHog } from 'posthog-node';
import { types } from 'node:util';
import { ErrorReporter } from '../errors/error-reporter.js';
import { currentOperation } from '../request/request-context.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import type { SentryApi } from '../outlets/sentry-bridge.js';
import { POSTHOG_CLIENT, SENTRY, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import { hookJobMethods, registerJobInstance, type JobRunner } from './job-hook.js';
import { endpointOf, type JobMethod } from './job-method.js';
import { currentJobRun, firstReport, inJobRun, JobRun } from './job-run.js';

type Method = (this: unknown, ...args: unknown[]) => unknown;

/** What Nest's `DiscoveryService` hands out (its `InstanceWrapper`), as far as it is read here. */
interface Discovered {
  metatype?: unknown;
  inject?: unknown;
  instance?: unknown;
  isAlias?: boolean;
  isDependencyTreeStatic(): boolean;
}

/**
 * Failures outside requests: a `@Cron`, `@Interval` or `@Timeout` job
 * (`@nestjs/schedule`) or an `@OnEvent` handler (`@nestjs/event-emitter`) that
 * throws or rejects is reported once, as `captureError` would (an `api_error`
 * with its `$exception` and Sentry event), under `endpoint` `cron:<name>`,
 * `interval:<name>`, `timeout:<name>` or `event:<event>`; then the error goes on
 * exactly as before, to the scheduler's or the emitter's own handling and logging.
 *
 * Neither package is imported: their decorators' metadata is read by its keys'
 * values (job-method.ts), and an app without them has nothing to hook.
 *
 * When: the methods are hooked on their prototypes in this constructor (job-hook.ts).
 * Nest makes every instance of every module before it calls any `onModuleInit`,
 * and `@nestjs/schedule` reads each job's function in its own `onModuleInit`
 * and keeps it, so it keeps the hook, whatever the order of the imports. The
 * app's instances are registered in `onModuleInit`, before the scheduler starts
 * its timers and the emitter subscribes (`onApplicationBootstrap`).
 *
 * Each run outside requests gets its own context: a fresh `request_id`,
 * `distinct_id: "server"`, and in Sentry an isolation scope of its own, so the
 * tags and breadcrumbs of one run never reach another's or a request's event.
 * An event handler called inside a request (an `emit` in a controller) or
 * inside a run keeps that context's `request_id` and user (its own Sentry
 * scope still forks); a scheduled method called by the app's own code inside a
 * request or a run is that caller's business and runs untouched.
 */
@Injectable()
export class JobErrorsExplorer implements OnModuleInit, OnApplicationShutdown, JobRunner {
  private readonly active: boolean;
  private readonly registrations: (() => void)[] = [];

  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    private readonly errors: ErrorReporter,
    private readonly failures: TelemetryFailures,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    @Optional() @Inject(SENTRY) private readonly sentry?: SentryApi,
  ) {
    this.active = options.mode !== 'off' && options.captureJobErrors;
    if (!this.active) return;
    // Classes are known from the scan, before their instances are made: hook them now.
    this.guard('job hooks', () => {
      for (const wrapper of this.discovered()) this.hook(classPrototypeOf(wrapper));
    });
  }

  onModuleInit(): void {
    if (!this.active) return;
    this.guard('job hooks', () => {
      for (const wrapper of this.discovered()) {
        const instance = wrapper.instance;
        if (!instance || typeof instance !== 'object' || wrapper.isAlias || !wrapper.isDependencyTreeStatic()) continue;
        // Also the instances a factory made, whose class was not known before.
        if (this.hook(Object.getPrototypeOf(instance))) this.registrations.push(registerJobInstance(instance, this));
      }
    });
  }

  onApplicationShutdown(): void {
    for (const unregister of this.registrations.splice(0)) unregister();
  }

  /** One call of a hooked method of a registered instance. Never throws of its own; the job's error, unchanged. */
  run(job: JobMethod, instance: object, original: Method, args: unknown[]): unknown {
    let started = false;
    const call = () => {
      started = true;
      return this.observe(job, instance, original, args);
    };
    try {
      const outer = currentOperation() !== undefined || currentJobRun(this.posthog) !== undefined;
      // The app's own code calling a scheduled method: its caller sees the error, as it always did.
      if (outer && job.kind !== 'event') {
        started = true;
        return original.apply(instance, args);
      }
      const isolated = this.isolated(call);
      if (outer) return isolated();
      return inJobRun(this.posthog, new JobRun(endpointOf(job, instance), job.method), this.options.environment, isolated);
    } catch (error) {
      if (started) throw error;
      // The context could not be set up: the job runs anyway, unreported.
      this.failures.report('job context', error);
      return original.apply(instance, args);
    }
  }

  /** Calls the job; a throw or a rejection is reported, then thrown or rejected as it was. */
  private observe(job: JobMethod, instance: object, original: Method, args: unknown[]): unknown {
    let result: unknown;
    try {
      result = original.apply(instance, args);
    } catch (error) {
      this.report(job, instance, error);
      throw error;
    }
    // Only native promises: calling `then` on another thenable (a lazy query) could run it twice.
    if (!types.isPromise(result)) return result;
    return result.then(undefined, (error: unknown) => {
      this.report(job, instance, error);
      throw error;
    });
  }

  private report(job: JobMethod, instance: object, error: unknown): void {
    this.guard('job error', () => {
      if (!firstReport(error)) return;
      this.errors.reportCaptured(
        error,
        { endpoint: endpointOf(job, instance), method: job.method, statusCode: 500 },
        { handled: false, mechanism: job.mechanism },
      );
    });
  }

  /** `fn` in a Sentry isolation scope of its own (a fork of the current one), when the module has Sentry. */
  private isolated<T>(fn: () => T): () => T {
    const sentry = this.sentry;
    const withIsolationScope = sentry?.withIsolationScope;
    return typeof withIsolationScope === 'function' ? () => withIsolationScope.call<typeof sentry, [() => T], T>(sentry, () => fn()) : fn;
  }

  private hook(prototype: unknown): boolean {
    if (!prototype || typeof prototype !== 'object' || prototype === Object.prototype) return false;
    return hookJobMethods(prototype, this.scanner.getAllMethodNames(prototype));
  }

  /** Providers and controllers, where both packages look for their methods. */
  private discovered(): Discovered[] {
    return [...this.discovery.getProviders(), ...this.discovery.getControllers()] as unknown as Discovered[];
  }

  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.failures.report(what, error);
    }
  }
}

/** The prototype of a class provider or controller (a factory's instance is known only once made); a value's. */
function classPrototypeOf(wrapper: Discovered): unknown {
  if (wrapper.isAlias) return undefined;
  if (typeof wrapper.metatype === 'function' && !wrapper.inject) return wrapper.metatype.prototype;
  return wrapper.instance && typeof wrapper.instance === 'object' ? Object.getPrototypeOf(wrapper.instance) : undefined;
}

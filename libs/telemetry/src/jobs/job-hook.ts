import { jobMethodOf, type JobMethod } from './job-method.js';

type Method = (this: unknown, ...args: unknown[]) => unknown;

/** Runs a hooked method for the instances of one app (job-errors.explorer.ts). */
export interface JobRunner {
  run(job: JobMethod, instance: object, original: Method, args: unknown[]): unknown;
}

/** On a hooked method: its original. Shared by every copy of the module in the process. */
const HOOKED = Symbol.for('nestjs-posthog-telemetry.job-hook');
/** The runner of each registered instance; an instance no app registered runs its method untouched. */
const runners = new WeakMap<object, JobRunner>();

interface Metadata {
  getOwnMetadataKeys?(target: object): unknown[];
  getOwnMetadata?(key: unknown, target: object): unknown;
  defineMetadata?(key: unknown, value: unknown, target: object): void;
}
const reflect = Reflect as unknown as Metadata;

/**
 * Reports the runs of `instance`'s job methods through `runner`; the first
 * app to register an instance keeps it (two modules in one app report once).
 * Returns the way back.
 */
export function registerJobInstance(instance: object, runner: JobRunner): () => void {
  if (runners.has(instance)) return () => undefined;
  runners.set(instance, runner);
  return () => {
    if (runners.get(instance) === runner) runners.delete(instance);
  };
}

/**
 * Hooks the methods of `prototype` (and of the prototypes it inherits from)
 * decorated with `@Cron`, `@Interval`, `@Timeout` or `@OnEvent`, once per
 * process, where each is defined. Returns whether it has any.
 *
 * The hook takes the method's place on its prototype, carrying the same
 * metadata, so the scheduler and the event emitter find it and call it instead
 * of the original, whenever they read the method: `@nestjs/schedule` keeps the
 * function it read at its `onModuleInit`, `@nestjs/event-emitter` reads
 * `instance[method]` at each event. For an instance no app registered, the
 * hook calls the original and does nothing else.
 */
export function hookJobMethods(prototype: object | null | undefined, methodNames: readonly string[]): boolean {
  if (!prototype) return false;
  let found = false;
  for (const name of methodNames) {
    try {
      const fn: unknown = (prototype as Record<string, unknown>)[name];
      if (typeof fn !== 'function') continue;
      if ((fn as { [HOOKED]?: unknown })[HOOKED]) {
        found = true;
        continue;
      }
      const job = jobMethodOf(fn, name);
      if (job && hookMethod(prototype, name, fn as Method, job)) found = true;
    } catch {
      /* a method that cannot be read or replaced runs as it is, unreported */
    }
  }
  return found;
}

function hookMethod(prototype: object, name: string, original: Method, job: JobMethod): boolean {
  let owner: object | null = prototype;
  while (owner && !Object.prototype.hasOwnProperty.call(owner, name)) owner = Object.getPrototypeOf(owner);
  const descriptor = owner && Object.getOwnPropertyDescriptor(owner, name);
  if (!owner || !descriptor || descriptor.value !== original || !(descriptor.writable || descriptor.configurable)) return false;
  const hooked = {
    [name](this: unknown, ...args: unknown[]): unknown {
      const runner = this !== null && typeof this === 'object' ? runners.get(this) : undefined;
      return runner ? runner.run(job, this as object, original, args) : original.apply(this, args);
    },
  }[name];
  Object.defineProperty(hooked, 'length', { value: original.length });
  for (const key of reflect.getOwnMetadataKeys?.(original) ?? []) {
    reflect.defineMetadata?.(key, reflect.getOwnMetadata?.(key, original), hooked);
  }
  // Without the same metadata the scheduler or the emitter would not find the method: then leave it alone.
  if (jobMethodOf(hooked, name)?.kind !== job.kind) return false;
  Object.defineProperty(hooked, HOOKED, { value: original });
  Object.defineProperty(owner, name, { ...descriptor, value: hooked });
  return true;
}

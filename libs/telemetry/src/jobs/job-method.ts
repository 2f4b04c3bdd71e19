import { truncate } from '../privacy/bounded.js';

/*
 * The metadata `@nestjs/schedule` and `@nestjs/event-emitter` put on a decorated
 * method (on the function itself, as `SetMetadata` does), read by the string
 * values of their keys: both packages are optional, and nothing of them is loaded here.
 */
/** `@Cron`, `@Interval`, `@Timeout`: `SchedulerType` (1 cron, 2 timeout, 3 interval). */
const SCHEDULER_TYPE = 'SCHEDULER_TYPE';
/** The job's `name` option (`@Cron`), or the name given first (`@Interval('name', ms)`, `@Timeout('name', ms)`). */
const SCHEDULER_NAME = 'SCHEDULER_NAME';
/** `@OnEvent`: `{ event, options }`, or an array of them when a method listens to several events. */
const EVENT_LISTENER_METADATA = 'EVENT_LISTENER_METADATA';
const SCHEDULER_KINDS: Record<number, JobKind> = { 1: 'cron', 2: 'timeout', 3: 'interval' };

/** Longest endpoint sent for a job or an event handler. */
const MAX_ENDPOINT = 200;

export type JobKind = 'cron' | 'interval' | 'timeout' | 'event';

/** A method the scheduler or the event emitter calls, as it is reported. */
export interface JobMethod {
  kind: JobKind;
  /** `CRON`, `INTERVAL`, `TIMEOUT` or `EVENT`: the `method` of its `api_error`. */
  method: string;
  /** The job's own name, or the event name(s); `undefined`: named after its class and method. */
  name?: string;
  methodName: string;
  /** Sentry's `mechanism.type` of its errors. */
  mechanism: string;
}

/** `reflect-metadata`'s reader, which Nest's decorators need anyway. */
const reflect = Reflect as unknown as { getMetadata?(key: unknown, target: object): unknown };

/** What the decorators of `fn` (the method's function) make of it, or `undefined` for a plain method. Never throws. */
export function jobMethodOf(fn: unknown, methodName: string): JobMethod | undefined {
  if (typeof fn !== 'function') return undefined;
  try {
    const getMetadata = reflect.getMetadata;
    if (typeof getMetadata !== 'function') return undefined;
    const read = (key: string) => getMetadata.call(reflect, key, fn);
    const kind = SCHEDULER_KINDS[read(SCHEDULER_TYPE) as number];
    if (kind) {
      const name = read(SCHEDULER_NAME);
      return {
        kind,
        method: kind.toUpperCase(),
        name: typeof name === 'string' && name !== '' ? truncate(name, MAX_ENDPOINT) : undefined,
        methodName,
        mechanism: `auto.function.nestjs_posthog_telemetry.${kind}`,
      };
    }
    const listeners = read(EVENT_LISTENER_METADATA);
    const events = (Array.isArray(listeners) ? listeners : [listeners]).filter((l) => l !== null && typeof l === 'object' && 'event' in l);
    if (events.length === 0) return undefined;
    const names = [...new Set(events.map((l: { event: unknown }) => eventName(l.event)))];
    return {
      kind: 'event',
      method: 'EVENT',
      name: truncate(names.join(','), MAX_ENDPOINT),
      methodName,
      mechanism: 'auto.event.nestjs_posthog_telemetry',
    };
  } catch {
    return undefined;
  }
}

/**
 * The `endpoint` of a run: `cron:<name>`, `interval:<name>`, `timeout:<name>`
 * (`<Class>.<method>` for a job without a name) or `event:<event>`.
 */
export function endpointOf(job: JobMethod, instance: object): string {
  if (job.name !== undefined) return `${job.kind}:${job.name}`;
  let className = 'anonymous';
  try {
    const name = (instance.constructor as { name?: unknown } | undefined)?.name;
    if (typeof name === 'string' && name !== '') className = name;
  } catch {
    /* an instance without a readable class is still reported */
  }
  return truncate(`${job.kind}:${className}.${job.methodName}`, MAX_ENDPOINT);
}

/**
 * An event name as text: a string as it is (a wildcard pattern such as `order.*`
 * stays the pattern), a symbol as `Symbol(description)`, an array (eventemitter2's
 * namespaces) joined with `.`, its default delimiter.
 */
export function eventName(event: unknown): string {
  const one = (part: unknown): string => (typeof part === 'symbol' ? part.toString() : String(part));
  try {
    return truncate(Array.isArray(event) ? event.map(one).join('.') : one(event), MAX_ENDPOINT);
  } catch {
    return 'unknown';
  }
}

/** Marks a Nest prototype the module has hooked: once per process, whatever the number of apps or copies of the module. */
const HOOKED = Symbol.for('nestjs-posthog-telemetry.hooked');

/**
 * Runs `hook` on a prototype of Nest's the first time it is asked to (its own
 * mark: a subclass of a hooked class is hooked in its own right). The hooks of
 * http/, graphql/, rpc/ and ws/ wrap a method and pass straight through.
 */
export function hookOnce<T extends object>(prototype: T | undefined, hook: (prototype: T) => void): void {
  if (!prototype || Object.prototype.hasOwnProperty.call(prototype, HOOKED)) return;
  Object.defineProperty(prototype, HOOKED, { value: true });
  hook(prototype);
}

interface FilterMetadata {
  exceptionMetatypes?: unknown[];
}

/**
 * Whether one of the app's exception filters (global, class or method, of any
 * transport) takes this exception, as Nest picks it: a filter for no class
 * takes everything, one for classes takes their instances.
 */
export function answeredByAppFilter(filters: unknown, exception: unknown): boolean {
  if (!Array.isArray(filters)) return false;
  return filters.some(({ exceptionMetatypes }: FilterMetadata) => {
    if (!Array.isArray(exceptionMetatypes) || exceptionMetatypes.length === 0) return true;
    return exceptionMetatypes.some((type) => typeof type === 'function' && exception instanceof type);
  });
}

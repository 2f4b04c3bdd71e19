import type { ArgumentsHost } from '@nestjs/common';
import { stateOfRequest } from './request-context.js';
import { routeTemplateOf } from './route-template.js';

/**
 * Tells the module about an exception your own filter handled. A filter of
 * yours bound to a controller, a method, or registered globally after the
 * module's catches the exception before the module's filter sees it; call this
 * (or use `@TelemetryExceptionCaptured()` on `catch`) and the request still
 * gets its one `api_error` (and `$exception`), with the status your filter sent.
 */
export function noteException(exception: unknown, host: ArgumentsHost): void {
  if (host.getType() !== 'http') return;
  try {
    const request = host.switchToHttp().getRequest();
    const state = stateOfRequest(request);
    if (!state) return;
    state.noteError(exception);
    state.adapterRequest = request;
    state.endpoint ??= routeTemplateOf(request);
  } catch {
    /* the app's own handling matters more than the note */
  }
}

/** On your exception filter's `catch(exception, host)`: reports the exception before your code runs. */
export function TelemetryExceptionCaptured(): MethodDecorator {
  return (_target, _key, descriptor: PropertyDescriptor) => {
    const original = descriptor.value as (exception: unknown, host: ArgumentsHost, ...rest: unknown[]) => unknown;
    descriptor.value = function (this: unknown, exception: unknown, host: ArgumentsHost, ...rest: unknown[]) {
      noteException(exception, host);
      return original.call(this, exception, host, ...rest);
    };
    return descriptor;
  };
}

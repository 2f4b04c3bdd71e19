import type { ArgumentsHost } from '@nestjs/common';
import { operationOf } from '../request/request-context.js';
import { routeTemplateOf } from '../http/route-template.js';

/**
 * Tells the module about an exception your own filter handled. Not needed for
 * filters Nest runs (the module sees every exception Nest hands to a filter,
 * see `nest-error-hooks.ts`); useful where your code answers an error no filter
 * saw, e.g. one caught inside a handler that writes its own error response.
 * The request gets its one `api_error`, with the status your code sent.
 */
export function noteException(exception: unknown, host: ArgumentsHost): void {
  if (host.getType() !== 'http') return;
  try {
    const request = host.switchToHttp().getRequest();
    operationOf(request)?.noteError(exception, true, { request, endpoint: routeTemplateOf(request) });
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

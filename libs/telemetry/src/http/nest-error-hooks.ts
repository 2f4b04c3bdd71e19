import { StreamableFile } from '@nestjs/common';
import { ExceptionsHandler } from '@nestjs/core/exceptions/exceptions-handler.js';
import { RouterResponseController } from '@nestjs/core/router/router-response-controller.js';
import { isObservable, type Observable, tap } from 'rxjs';
import { currentOperation, operationOf } from '../request/request-context.js';
import { answeredByAppFilter, hookOnce } from '../errors/nest-hooks.js';
import { routeTemplateOf } from './route-template.js';

/** Notes an exception on its request, seen where Nest hands it to the filters. Never throws. */
function noteRouteException(exception: unknown, host: { getArgByIndex?(i: number): unknown }, filters: unknown): void {
  try {
    const request = host?.getArgByIndex?.(0);
    operationOf(request)?.noteError(exception, answeredByAppFilter(filters, exception), { request, endpoint: routeTemplateOf(request) });
  } catch {
    /* the app's own handling matters more than the note */
  }
}

/**
 * Where the module sees a request's errors without being an exception filter:
 * it watches the places Nest itself hands an error on, and changes nothing of
 * what happens there.
 *
 * - `ExceptionsHandler.next`: every HTTP route, middleware, the not-found
 *   handler and the exception layer pass their exception here before Nest picks
 *   the app's filter (newest global first, then controller, then method) or its
 *   own. Being no filter, the module can shadow none of the app's, whatever the
 *   import order, and it still learns of the exceptions they answer. The status
 *   reported is the one the response was sent with.
 * - The SSE pipeline: an Observable that fails after the headers went out is
 *   answered with an `error` message and never reaches a filter.
 * - `StreamableFile` (and the web streams and async iterables Nest sends through
 *   it): the stream is kept on the request, so a source that fails midway is told
 *   apart from a client that went away when the response closes.
 *
 * The hooks are installed once per process and pass straight through for
 * requests the module does not track.
 */
export function hookNestErrorPaths(): void {
  hookOnce(ExceptionsHandler.prototype, (prototype) => {
    const next = prototype.next;
    prototype.next = function (this: { filters?: unknown }, exception, host) {
      noteRouteException(exception, host, this.filters);
      return next.call(this, exception, host);
    };
  });

  hookOnce(RouterResponseController.prototype, (prototype) => {
    const sse = prototype.sse;
    prototype.sse = function (this: RouterResponseController, result, response, request, options) {
      const operation = operationOf(request);
      const noteError = (error: unknown) => operation?.noteError(error);
      const observe = (value: unknown) => (isObservable(value) ? (value as Observable<unknown>).pipe(tap({ error: noteError })) : value);
      // An Observable is wrapped as it is; only a promise of one waits, as Nest's own code does.
      const observed = !operation ? result : isObservable(result) ? observe(result) : Promise.resolve(result).then(observe);
      return sse.call(this, observed as typeof result, response, request, options);
    };
  });

  hookOnce(StreamableFile.prototype, (prototype) => {
    const getStream = prototype.getStream;
    prototype.getStream = function (this: StreamableFile) {
      const stream = getStream.call(this);
      const operation = currentOperation();
      if (operation && !operation.skip) operation.noteStream(stream);
      return stream;
    };
  });
}

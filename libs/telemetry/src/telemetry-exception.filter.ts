import { ArgumentsHost, Catch } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { stateOfRequest } from './request-context.js';
import { routeTemplateOf } from './route-template.js';

/**
 * Notes every exception on its request (guards, pipes, handlers and
 * interceptors alike), then lets Nest's own filter answer, so the response is
 * exactly what it would be without the module. The `api_error` event is built
 * when the response ends, with the status that was really sent.
 */
@Catch()
export class TelemetryExceptionFilter extends BaseExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    // A global filter also sees GraphQL, RPC and WebSocket errors: hand those back untouched.
    if (host.getType() !== 'http') throw exception;
    try {
      const request = host.switchToHttp().getRequest();
      const state = stateOfRequest(request);
      if (state) {
        state.noteError(exception);
        state.adapterRequest = request;
        state.endpoint ??= routeTemplateOf(request);
      }
    } catch {
      /* the response below matters more than the note */
    }
    super.catch(exception, host);
  }
}

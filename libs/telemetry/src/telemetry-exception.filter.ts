import { ArgumentsHost, Catch } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { noteException } from './exception-captured.decorator.js';

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
    noteException(exception, host);
    super.catch(exception, host);
  }
}

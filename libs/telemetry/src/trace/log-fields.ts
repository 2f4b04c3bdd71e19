import type { Operation } from '../request/operation.js';
import { currentOperation, operationOf } from '../request/request-context.js';
import { traceparentOf } from './trace-context.js';

/** What `telemetryLogFields()` stamps on a log line written during an operation. */
export interface TelemetryLogFields {
  request_id?: string;
  trace_id?: string;
  span_id?: string;
  user_id?: string;
}

/** The operation a log line is about: pino-http's `{ req }` / `{ res }` merge object, or a request. */
function operationIn(source: unknown): Operation | undefined {
  if (typeof source !== 'object' || source === null) return undefined;
  const s = source as { req?: unknown; res?: { req?: unknown }; raw?: unknown };
  return operationOf(s.req) ?? operationOf(s.res?.req) ?? operationOf(source);
}

/**
 * The fields that tie a log line to its operation's events: `request_id`,
 * `trace_id`, `span_id` and `user_id` (`anonymous` until the app's auth ran),
 * read from the operation the caller runs in, else from the request (or
 * pino-http's `{ req }`/`{ res }`) passed; `{}` outside operations. Never throws.
 *
 * Made to be pino's `mixin` as is (nestjs-pino: `LoggerModule.forRoot({ pinoHttp: { mixin: telemetryLogFields } })`),
 * and usable with any logger: `logger.log({ msg, ...telemetryLogFields() })`.
 */
export function telemetryLogFields(source?: unknown): TelemetryLogFields {
  try {
    const operation = currentOperation() ?? operationIn(source);
    if (!operation) return {};
    return { request_id: operation.requestId, trace_id: operation.traceId, span_id: operation.spanId, user_id: operation.userId };
  } catch {
    return {};
  }
}

/**
 * The W3C `traceparent` for a call made now, from the running operation (its trace, its span as the
 * parent), for transports the module does not see by itself (a queue message's headers, gRPC metadata,
 * a microservice packet). `undefined` outside operations.
 */
export function currentTraceparent(): string | undefined {
  const operation = currentOperation();
  return operation ? traceparentOf(operation) : undefined;
}

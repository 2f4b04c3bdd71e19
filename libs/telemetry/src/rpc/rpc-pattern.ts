import { httpStatusOf } from '../errors/error-categorizer.js';

/** Longest pattern kept in an endpoint; longer ones are cut and marked. */
export const MAX_PATTERN = 200;

/**
 * The endpoint of a message handler: `rpc:` and its pattern as the server
 * routes it (Nest's normalised route: an object pattern is JSON with its keys
 * sorted, so `{ cmd: 'sum' }` and `{ cmd: 'sum' }` sent in any key order give
 * one endpoint), cut to {@link MAX_PATTERN} characters. Only patterns a handler
 * is declared for get here, so the set of endpoints is the app's own.
 */
export function rpcEndpoint(route: unknown): string {
  let text: string;
  if (typeof route === 'string') text = route;
  else {
    try {
      text = JSON.stringify(route) ?? String(route);
    } catch {
      text = String(route);
    }
  }
  return 'rpc:' + (text.length > MAX_PATTERN ? text.slice(0, MAX_PATTERN) + '…' : text);
}

function field(value: unknown, key: string): unknown {
  try {
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  } catch {
    return undefined;
  }
}

function errorStatus(value: unknown): number | undefined {
  const status = field(value, 'statusCode') ?? field(value, 'status');
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599 ? status : undefined;
}

/**
 * The status an RPC error weighs as (the outcome step is status-based): an
 * `HttpException`'s own (`NotFoundException`: 404, a client error); a numeric
 * `statusCode` or `status` from 400 to 599 on the error or on an
 * `RpcException`'s payload (`new RpcException({ statusCode: 404, … })`);
 * anything else, a plain `Error` or an `RpcException` that says nothing, 500.
 */
export function rpcStatusOf(error: unknown): number {
  const http = httpStatusOf(error);
  if (http !== undefined) return http;
  const own = errorStatus(error);
  if (own !== undefined) return own;
  const getError = field(error, 'getError');
  if (typeof getError === 'function') {
    try {
      const payload = getError.call(error);
      const inner = errorStatus(payload);
      if (inner !== undefined) return inner;
    } catch {
      /* a throwing getError says nothing */
    }
  }
  return 500;
}

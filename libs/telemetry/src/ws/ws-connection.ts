import { randomUUID } from 'node:crypto';
import { isValidRequestId } from '../request/request-id.js';
import { tracingId } from '../request/tracing-id.js';

/**
 * One WebSocket connection as the module keeps it: the ids its handshake
 * brought, and the count of its messages (each message's `request_id` is the
 * connection's id with the message's number: `<id>:<n>`).
 */
export interface WsConnection {
  /** The handshake's `X-Request-ID` (or `requestId` in socket.io's `auth` or the query) when valid, else a new UUID. */
  readonly id: string;
  readonly sessionId: string | undefined;
  readonly frontendDistinctId: string | undefined;
  /** The handshake's W3C `traceparent` (header, else `auth` or query), checked where the operation is made. */
  readonly traceparent: string | undefined;
  /** What `resolveUser` is given: the handshake request, with `user` and `client` read off the connection. */
  readonly request: object;
  messages: number;
}

type Bag = Record<string, unknown>;

function bag(value: unknown): Bag | undefined {
  return value !== null && typeof value === 'object' ? (value as Bag) : undefined;
}

/** The query of a request URL, as a plain object (first value of each name). */
function queryOf(url: unknown): Bag | undefined {
  if (typeof url !== 'string' || !url.includes('?')) return undefined;
  try {
    const out: Bag = {};
    for (const [name, value] of new URL(url, 'http://localhost').searchParams) if (!(name in out)) out[name] = value;
    return out;
  } catch {
    return undefined;
  }
}

/** The first value under one of `names` (case-insensitive for the header-like ones) in the bags, in order. */
function pick(bags: (Bag | undefined)[], names: string[], accept: (value: unknown) => string | undefined): string | undefined {
  for (const source of bags) {
    if (!source) continue;
    for (const name of names) {
      const found = accept(source[name] ?? source[name.toLowerCase()]);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** The user a gateway's auth put on the connection, in the common Nest recipes. */
function userOn(client: Bag | undefined, request: Bag | undefined): unknown {
  return client?.user ?? bag(client?.data)?.user ?? request?.user ?? bag(client?.handshake)?.user;
}

/**
 * Reads a connection's identity from its handshake: socket.io's `handshake`
 * (`headers`, `auth`, `query`) or, for `ws`, the upgrade request (headers and
 * query). Headers win, then socket.io's `auth`, then the query (a browser's
 * WebSocket cannot send headers). Never throws.
 */
export function readConnection(client: unknown, upgradeRequest: unknown, requestIdHeader: string): WsConnection {
  const socket = bag(client);
  const handshake = bag(socket?.handshake);
  const request = bag(upgradeRequest) ?? bag(safely(() => socket?.request));
  const headers = bag(handshake?.headers) ?? bag(request?.headers);
  const auth = bag(handshake?.auth);
  const query = bag(handshake?.query) ?? queryOf(request?.url);
  const header = (name: string) => (typeof headers?.[name] === 'string' ? (headers[name] as string) : undefined);
  const validId = (value: unknown) => (isValidRequestId(value) ? value : undefined);
  const id = validId(header(requestIdHeader)) ?? pick([auth, query], [requestIdHeader, 'requestId'], validId) ?? randomUUID();
  const sessionId =
    tracingId(header('x-posthog-session-id')) ?? pick([auth, query], ['X-POSTHOG-SESSION-ID', 'posthogSessionId'], tracingId);
  const frontendDistinctId =
    tracingId(header('x-posthog-distinct-id')) ?? pick([auth, query], ['X-POSTHOG-DISTINCT-ID', 'posthogDistinctId'], tracingId);
  const traceparent =
    header('traceparent') ?? pick([auth, query], ['traceparent'], (v) => (typeof v === 'string' && v.length <= 100 ? v : undefined));
  const view: Bag = Object.create(request ?? null);
  Object.defineProperties(view, {
    user: { enumerable: true, get: () => userOn(socket, request) },
    client: { value: client },
  });
  if (!request) Object.defineProperty(view, 'headers', { value: headers ?? {} });
  return { id, sessionId, frontendDistinctId, traceparent, request: view, messages: 0 };
}

/** The `request_id` of a connection's `n`th message: `<connection id>:<n>`, within the 128 characters an id may have. */
export function messageRequestId(connection: WsConnection, n: number): string {
  const suffix = `:${n}`;
  return connection.id.slice(0, 128 - suffix.length) + suffix;
}

/**
 * A request of engine.io (socket.io's HTTP long-polling, or the request that
 * upgrades to a WebSocket): it carries `EIO=<version>` and `transport=` in its
 * query whatever socket.io's `path` is.
 */
export function isEngineIoRequest(url: string | undefined): boolean {
  if (!url) return false;
  const query = url.indexOf('?');
  if (query < 0) return false;
  const search = url.slice(query);
  return /[?&]EIO=\d/.test(search) && /[?&]transport=[a-z]/.test(search);
}

function safely<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

import * as diagnostics from 'node:diagnostics_channel';
import { ClientRequest } from 'node:http';

/** One outgoing HTTP call, as seen before its headers leave: read its URL and headers, add a header. */
export interface OutgoingCall {
  /** The URL called (`protocol//host[:port]/path?query`); `undefined` when it cannot be told. */
  url(): string | undefined;
  /** The call already has this header (any case). */
  has(name: string): boolean;
  /** Adds a header the call does not have. */
  add(name: string, value: string): void;
}

export type OutgoingCallHandler = (call: OutgoingCall) => void;

/**
 * Handlers of every module in the process (each reads its own operations' context), kept with the hooks'
 * state on Node's own `ClientRequest.prototype`, which every copy of the module shares (a second copy in
 * node_modules, a test runner's per-file realms, whose `globalThis` differ): the hooks are put in place once
 * per process, whichever copy loads first, and call every copy's handlers.
 */
let cached: { handlers: Set<OutgoingCallHandler>; installed: boolean } | undefined;
const state = () => (cached ??= sharedState());

function sharedState(): { handlers: Set<OutgoingCallHandler>; installed: boolean } {
  const key = Symbol.for('nestjs-posthog-telemetry.outbound.hooks');
  const holder = ClientRequest.prototype as unknown as Record<
    symbol,
    { handlers: Set<OutgoingCallHandler>; installed: boolean } | undefined
  >;
  const found = holder[key];
  if (found) return found;
  const made = { handlers: new Set<OutgoingCallHandler>(), installed: false };
  Object.defineProperty(holder, key, { value: made, enumerable: false, configurable: true, writable: false });
  return made;
}

function dispatch(call: OutgoingCall): void {
  for (const handler of state().handlers) {
    try {
      handler(call);
    } catch {
      // Each handler guards itself; a call never fails for the module.
    }
  }
}

// ---- fetch / undici: `undici:request:create` (Node's bundled undici and the npm package) ----

interface UndiciRequest {
  origin?: string | URL;
  path?: string;
  /** undici 6+: `[name, value, …]`; undici 5: `'name: value\r\n…'`. */
  headers?: unknown;
  addHeader?(name: string, value: string): unknown;
}

function undiciCall(request: UndiciRequest): OutgoingCall {
  return {
    url: () => (request.origin === undefined ? undefined : String(request.origin).replace(/\/+$/, '') + (request.path ?? '')),
    has: (name) => {
      const wanted = name.toLowerCase();
      const headers = request.headers;
      if (Array.isArray(headers)) {
        for (let i = 0; i < headers.length; i += 2) if (String(headers[i]).toLowerCase() === wanted) return true;
        return false;
      }
      if (typeof headers === 'string')
        return headers.split('\r\n').some((line) => line.slice(0, line.indexOf(':')).trim().toLowerCase() === wanted);
      return true; // a shape not known: touch nothing
    },
    add: (name, value) => {
      if (typeof request.addHeader === 'function') request.addHeader(name, value);
    },
  };
}

const onUndiciRequest = (message: unknown): void => {
  const request = (message as { request?: UndiciRequest } | undefined)?.request;
  if (request && state().handlers.size > 0) dispatch(undiciCall(request));
};

// ---- node:http / node:https (and so axios, @nestjs/axios, got, …) ----

type StoreHeader = (this: ClientRequest, firstLine: string, headers: unknown) => unknown;
/** Marks the module's wrapper, so it is put in place once per process. */
const WRAPPED = Symbol.for('nestjs-posthog-telemetry.outbound.store-header');

/** `ClientRequest`'s own header store (`kOutHeaders`), which `_storeHeader` is handed as `headers`. */
function outHeadersOf(request: ClientRequest): unknown {
  const key = Object.getOwnPropertySymbols(request).find((symbol) => symbol.description === 'kOutHeaders');
  return key === undefined ? undefined : (request as unknown as Record<symbol, unknown>)[key];
}

/**
 * A call made by node:http(s), seen in `ClientRequest#_storeHeader`: its headers are about to be written,
 * and everything the app set (options, `setHeader`) is there. Headers given as an array are copied, never
 * changed in place (the app may reuse its array).
 */
function httpCall(request: ClientRequest, args: [string, unknown]): OutgoingCall {
  const headerIn = (list: unknown[], wanted: string): unknown => {
    if (Array.isArray(list[0])) return (list as unknown[][]).find((pair) => String(pair[0]).toLowerCase() === wanted)?.[1];
    for (let i = 0; i < list.length; i += 2) if (String(list[i]).toLowerCase() === wanted) return list[i + 1];
    return undefined;
  };
  return {
    url: () => {
      const headers = args[1];
      const host = Array.isArray(headers) ? headerIn(headers, 'host') : request.getHeader('host');
      return `${request.protocol ?? 'http:'}//${String(host ?? request.host)}${request.path ?? '/'}`;
    },
    has: (name) => {
      const headers = args[1];
      if (Array.isArray(headers)) return headerIn(headers, name.toLowerCase()) !== undefined;
      return request.hasHeader(name);
    },
    add: (name, value) => {
      const headers = args[1];
      if (Array.isArray(headers)) {
        args[1] = Array.isArray(headers[0]) ? [...headers, [name, value]] : [...headers, name, value];
        return;
      }
      request.setHeader(name, value);
      if (headers === null || headers === undefined || typeof headers !== 'object') args[1] = outHeadersOf(request) ?? headers;
    },
  };
}

function wrapStoreHeader(): boolean {
  const proto = ClientRequest.prototype as unknown as { _storeHeader?: StoreHeader & { [WRAPPED]?: true } };
  const original = proto._storeHeader;
  if (typeof original !== 'function') return false;
  if (original[WRAPPED]) return true;
  const wrapped = function storeHeader(this: ClientRequest, ...args: [string, unknown]) {
    if (state().handlers.size > 0 && this instanceof ClientRequest) {
      try {
        dispatch(httpCall(this, args));
      } catch {
        // never stands between the app and its call
      }
    }
    return original.apply(this, args);
  } as StoreHeader & { [WRAPPED]?: true };
  wrapped[WRAPPED] = true;
  proto._storeHeader = wrapped;
  return true;
}

/** Where `_storeHeader` is gone (a future Node): `http.client.request.created` (Node 22.14+), before headers are written. */
const onHttpRequestCreated = (message: unknown): void => {
  const request = (message as { request?: ClientRequest } | undefined)?.request;
  if (!request || state().handlers.size === 0 || request.headersSent) return;
  dispatch({
    url: () => `${request.protocol ?? 'http:'}//${String(request.getHeader('host') ?? request.host)}${request.path ?? '/'}`,
    has: (name) => request.hasHeader(name),
    add: (name, value) => request.setHeader(name, value),
  });
};

/** Sees every outgoing HTTP call (fetch/undici and node:http/https) of the process, once per process. */
function install(): void {
  if (state().installed) return;
  state().installed = true;
  diagnostics.subscribe('undici:request:create', onUndiciRequest);
  if (!wrapStoreHeader()) diagnostics.subscribe('http.client.request.created', onHttpRequestCreated);
}

/**
 * Calls `handler` for every outgoing HTTP call, in the async context of the code that makes it, before
 * its headers leave. The returned function stops it. The hooks stay in place, doing nothing without handlers.
 */
export function onOutgoingCall(handler: OutgoingCallHandler): () => void {
  install();
  const { handlers } = state();
  handlers.add(handler);
  return () => handlers.delete(handler);
}

import { IncomingMessage, ServerResponse, validateHeaderName } from 'node:http';

type HeaderStore = Record<string, [string, string]>;

/**
 * The same text as a property name V8 already holds: `object[name]` per request then needs no lookup of the
 * text among V8's names (computed text would be looked up on every access).
 */
export function internalized(name: string): string {
  return Object.keys({ [name]: true })[0];
}

/**
 * Node's own store of a response's headers (`kOutHeaders`: lower-cased name → `[name, value]`, on a
 * null-prototype object), found by setting a header on a response of its own and looking for it:
 * `undefined` where Node keeps them otherwise.
 */
function findHeaderStore(): symbol | undefined {
  try {
    const probe = new ServerResponse(new IncomingMessage(null as never));
    probe.setHeader('X-Telemetry-Probe', 'found');
    for (const key of Object.getOwnPropertySymbols(probe)) {
      const store = (probe as unknown as Record<symbol, unknown>)[key];
      if (store === null || typeof store !== 'object' || Object.getPrototypeOf(store) !== null) continue;
      const entry = (store as Record<string, unknown>)['x-telemetry-probe'];
      if (Array.isArray(entry) && entry[0] === 'X-Telemetry-Probe' && entry[1] === 'found') return key;
    }
  } catch {
    /* not found: `setHeader` it is */
  }
  return undefined;
}

/** Whether `header` stores and reads its header as `setHeader` and `getHeader` would, through Node's own methods. */
function actsAsNodeDoes(header: ResponseHeader): boolean {
  try {
    const probe = new ServerResponse(new IncomingMessage(null as never));
    const name = header.name;
    if (header.get(probe) !== undefined) return false;
    probe.setHeader('Content-Type', 'text/plain');
    header.set(probe, 'probe-1');
    header.set(probe, 'probe-2');
    const lower = header.lower;
    probe.setHeader('Vary', 'Origin');
    if (header.get(probe) !== 'probe-2') return false;
    probe.setHeader(name, 'probe-3');
    return (
      header.get(probe) === 'probe-3' &&
      probe.getHeader(name) === 'probe-3' &&
      probe.hasHeader(name) &&
      probe.getHeaderNames().join() === `content-type,${lower},vary` &&
      (probe as unknown as { getRawHeaderNames(): string[] }).getRawHeaderNames().join() === `Content-Type,${name},Vary` &&
      probe.getHeader('content-type') === 'text/plain'
    );
  } catch {
    return false;
  }
}

/** One response header the module writes and reads on every request: its request id header. */
export interface ResponseHeader {
  readonly name: string;
  /** `name`, lower-cased: how Node keys it. */
  readonly lower: string;
  /** `res.setHeader(name, value)`. */
  set(res: ServerResponse, value: string): void;
  /** `res.getHeader(name)`. */
  get(res: ServerResponse): unknown;
}

type Stored = Record<symbol, HeaderStore | null | undefined>;

/**
 * How the module sets and reads its request id header on every response: `res.setHeader(name, value)`
 * and `res.getHeader(name)`, without their checks. The name is checked here, once; a value is a request
 * id, checked where it was kept or made (letters, digits, `-_.:`). `setHeader` checks both with regular
 * expressions and both lower-case the name on every call, which came to a tenth of what the module costs
 * a request. Straight in Node's own store of the response's headers, where Node keeps them as this
 * version does (checked once, on a response of its own); through `setHeader` and `getHeader` otherwise,
 * and for responses of another kind (HTTP/2's compatibility API), which have no such store.
 */
export function responseHeader(name: string): ResponseHeader {
  const lower = name.toLowerCase();
  const viaNode: ResponseHeader = {
    name,
    lower,
    set: (res, value) => void res.setHeader(name, value),
    get: (res) => res.getHeader(name),
  };
  try {
    validateHeaderName(name);
  } catch {
    // `setHeader` refuses it on every request, as it would without the module's shortcut.
    return viaNode;
  }
  const store = findHeaderStore();
  if (store === undefined) return viaNode;
  const key = internalized(lower);
  const direct: ResponseHeader = {
    name,
    lower,
    set(res, value) {
      const headers = (res as unknown as Stored)[store];
      // Another kind of response, or one whose headers went out (`setHeader` throws, as it should).
      if (headers === undefined || res.headersSent) res.setHeader(name, value);
      else {
        // Made as `setHeader` makes it: a literal with no prototype.
        const target = headers ?? ((res as unknown as Stored)[store] = { __proto__: null } as unknown as HeaderStore);
        target[key] = [name, value];
      }
    },
    get(res) {
      const headers = (res as unknown as Stored)[store];
      if (headers === undefined) return res.getHeader(name);
      return headers === null ? undefined : headers[key]?.[1];
    },
  };
  return actsAsNodeDoes(direct) ? direct : viaNode;
}

import { createServer, IncomingMessage, ServerResponse, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { jest } from '@jest/globals';
import { Http2ServerResponse } from 'node:http2';
import { responseHeader } from './response-header.js';

/** The raw bytes of the answer to one request, its `Date` header taken out. */
async function rawAnswer(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end('GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      socket.on('end', () => resolve(text.replace(/\r\nDate: [^\r]*/, '')));
      socket.on('error', reject);
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

/** A response as an app writes it, after the id header was set by `setId` where the request entered. */
function app(setId: (res: ServerResponse) => void): Server {
  return createServer((_req, res) => {
    setId(res);
    res.setHeader('Content-Type', 'text/plain');
    res.appendHeader('Set-Cookie', 'a=1');
    res.statusCode = 201;
    res.end('done');
  });
}

function response(): ServerResponse {
  return new ServerResponse(new IncomingMessage(null as never));
}

describe('responseHeader', () => {
  it('sends the same bytes as setHeader', async () => {
    const header = responseHeader('X-Request-ID');
    const viaSetHeader = await rawAnswer(app((res) => res.setHeader('X-Request-ID', 'id-1')));
    const viaSetter = await rawAnswer(app((res) => header.set(res, 'id-1')));
    expect(viaSetHeader).toContain('X-Request-ID: id-1\r\n');
    expect(viaSetter).toBe(viaSetHeader);
  });

  it("leaves the response as setHeader does, for Node's header methods and the app's own setHeader after it", () => {
    const header = responseHeader('X-Correlation-Id');
    const [direct, viaNode] = [response(), response()];
    expect(header.get(direct)).toBeUndefined();
    header.set(direct, 'abc');
    viaNode.setHeader('X-Correlation-Id', 'abc');
    expect(header.get(direct)).toBe(viaNode.getHeader('X-Correlation-Id'));
    for (const res of [direct, viaNode]) res.setHeader('x-correlation-id', 'replaced-by-the-app');
    for (const res of [direct, viaNode]) res.setHeader('Vary', 'Origin');
    expect(direct.getHeaders()).toEqual(viaNode.getHeaders());
    // Node's own method (since 15.13), missing from the Node 20 types.
    const rawNames = (res: ServerResponse) => (res as ServerResponse & { getRawHeaderNames(): string[] }).getRawHeaderNames();
    expect(rawNames(direct)).toEqual(rawNames(viaNode));
    expect(header.get(direct)).toBe('replaced-by-the-app');
    direct.removeHeader('X-Correlation-Id');
    expect(direct.hasHeader('x-correlation-id')).toBe(false);
    expect(header.get(direct)).toBeUndefined();
  });

  it('throws as setHeader does once the headers went out', () => {
    const header = responseHeader('X-Request-ID');
    const res = response();
    res.writeHead(200);
    expect(() => header.set(res, 'late')).toThrow(/Cannot set headers after they are sent/);
    expect(header.get(res)).toBeUndefined();
  });

  it('adds to the headers already set, and replaces its own earlier value', () => {
    const header = responseHeader('X-Request-ID');
    const res = response();
    res.setHeader('X-Powered-By', 'Express');
    header.set(res, 'first');
    header.set(res, 'second');
    expect(res.getHeaders()).toEqual({ 'x-powered-by': 'Express', 'x-request-id': 'second' });
  });

  it("takes the shortcut on this Node: the response's setHeader is not called (its checks are what it spares)", () => {
    const header = responseHeader('X-Request-ID');
    const res = response();
    const setHeader = jest.fn();
    const getHeader = jest.fn();
    Object.assign(res, { setHeader, getHeader });
    header.set(res, 'id-1');
    expect(header.get(res)).toBe('id-1');
    expect(setHeader).not.toHaveBeenCalled();
    expect(getHeader).not.toHaveBeenCalled();
  });

  it("goes through Node's own methods for a response of another kind (HTTP/2's compatibility API)", () => {
    const header = responseHeader('X-Request-ID');
    const headers = new Map<string, string>();
    const res = Object.create(Http2ServerResponse.prototype) as Http2ServerResponse;
    Object.assign(res, {
      setHeader: (name: string, value: string) => headers.set(name, value),
      getHeader: (name: string) => headers.get(name),
    });
    header.set(res as unknown as ServerResponse, 'id-2');
    expect(headers.get('X-Request-ID')).toBe('id-2');
    expect(header.get(res as unknown as ServerResponse)).toBe('id-2');
  });

  it('fails on every call where setHeader refuses the name, as setHeader does (never at start-up)', () => {
    const header = responseHeader('Bad Header');
    expect(() => header.set(response(), 'id')).toThrow(/Header name/);
  });
});

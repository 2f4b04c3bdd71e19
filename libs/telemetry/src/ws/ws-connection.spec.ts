import { isEngineIoRequest, messageRequestId, readConnection } from './ws-connection.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('readConnection', () => {
  it('reads a socket.io handshake: headers first, then auth, then the query', () => {
    const client = {
      handshake: {
        headers: { 'x-request-id': 'conn-1', 'x-posthog-session-id': 'sess-h' },
        auth: { posthogSessionId: 'sess-a', posthogDistinctId: 'front-a' },
        query: { posthogDistinctId: 'front-q', requestId: 'conn-q' },
      },
      data: {},
    };
    const c = readConnection(client, undefined, 'x-request-id');
    expect(c).toMatchObject({ id: 'conn-1', sessionId: 'sess-h', frontendDistinctId: 'front-a', messages: 0 });
  });

  it('reads a ws upgrade request: headers and the query of its URL', () => {
    const request = {
      url: '/chat?requestId=conn-q&X-POSTHOG-SESSION-ID=sess-q',
      headers: { 'x-posthog-distinct-id': 'front-h', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    };
    const c = readConnection({ readyState: 1 }, request, 'x-request-id');
    expect(c).toMatchObject({
      id: 'conn-q',
      sessionId: 'sess-q',
      frontendDistinctId: 'front-h',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
  });

  it('a custom request id header', () => {
    const c = readConnection(
      { handshake: { headers: { 'x-correlation-id': 'corr-1', 'x-request-id': 'other' } } },
      undefined,
      'x-correlation-id',
    );
    expect(c.id).toBe('corr-1');
  });

  it('invalid or missing ids: a new connection id, no frontend ids', () => {
    const c = readConnection(
      {
        handshake: {
          headers: { 'x-request-id': 'bad id with spaces', 'x-posthog-distinct-id': 'undefined', 'x-posthog-session-id': 'a,b' },
          auth: {},
          query: {},
        },
      },
      undefined,
      'x-request-id',
    );
    expect(c.id).toMatch(UUID);
    expect(c.sessionId).toBeUndefined();
    expect(c.frontendDistinctId).toBeUndefined();
  });

  it('never throws on odd clients', () => {
    for (const client of [undefined, null, 1, 'x', {}, { handshake: null }, { handshake: { headers: 5, auth: 'x' } }]) {
      expect(() => readConnection(client, undefined, 'x-request-id')).not.toThrow();
    }
    const throwing = Object.defineProperty({}, 'request', {
      get: () => {
        throw new Error('no');
      },
    });
    expect(() => readConnection(throwing, undefined, 'x-request-id')).not.toThrow();
  });

  it("the user is read when asked: the client's, its data's, the handshake request's", () => {
    const socketIo: any = { handshake: { headers: {} }, data: {}, request: { headers: { authorization: 'Bearer t' } } };
    const view: any = readConnection(socketIo, undefined, 'x-request-id').request;
    expect(view.user).toBeUndefined();
    socketIo.data.user = { id: 'u1' };
    expect(view.user).toEqual({ id: 'u1' });
    // The handshake request's own fields stay readable by a custom resolveUser.
    expect(view.headers.authorization).toBe('Bearer t');
    expect(view.client).toBe(socketIo);

    const ws: any = {};
    const upgrade: any = { headers: {}, url: '/' };
    const wsView: any = readConnection(ws, upgrade, 'x-request-id').request;
    upgrade.user = { id: 'u2' };
    expect(wsView.user).toEqual({ id: 'u2' });
    ws.user = { id: 'u3' };
    expect(wsView.user).toEqual({ id: 'u3' });
  });
});

describe('messageRequestId', () => {
  it('is the connection id with the message number, within 128 characters', () => {
    expect(messageRequestId({ id: 'conn-1' } as any, 7)).toBe('conn-1:7');
    const long = 'a'.repeat(128);
    const id = messageRequestId({ id: long } as any, 12345);
    expect(id).toHaveLength(128);
    expect(id.endsWith(':12345')).toBe(true);
  });
});

describe('isEngineIoRequest', () => {
  it.each([
    ['/socket.io/?EIO=4&transport=polling&t=abc', true],
    ['/socket.io/?EIO=4&transport=polling&t=abc&sid=x', true],
    ['/custom-path/?EIO=4&transport=websocket', true],
    ['/api/users?transport=polling', false],
    ['/socket.io/', false],
    ['/api?EIO=x&transport=polling', false],
    [undefined, false],
  ])('%s → %s', (url, expected) => {
    expect(isEngineIoRequest(url)).toBe(expected);
  });
});

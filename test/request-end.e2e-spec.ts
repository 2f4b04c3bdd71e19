import { Controller, Get, Injectable, Res, type CanActivate, type ExecutionContext, type INestApplication } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createBareApp } from './support/bare-app.js';
import { CaptureServer, type CapturedEvent } from './support/capture-server.js';
import { ADAPTERS, createTestApp, sendingTo } from './support/test-app.js';

/** The Node response under Express's or Fastify's. */
const rawOf = (res: any): http.ServerResponse => res.raw ?? res;

/** Resolves when the handler of `/late/slow` has been reached: the client may go away then. */
let reachedSlow: () => void = () => undefined;

/** Handlers that fail once their response is over: after sending it, or after the client left. */
@Controller('late')
class LateController {
  @Get('after-send')
  async afterSend(@Res() res: any): Promise<void> {
    res.status(200).send({ sent: true });
    await once(rawOf(res), 'close');
    throw new Error('audit write failed after the answer went out');
  }

  @Get('slow')
  async slow(@Res() res: any): Promise<void> {
    const closed = once(rawOf(res), 'close');
    reachedSlow();
    await closed;
    throw new Error('upstream call failed after the client left');
  }

  @Get('pipelined/:n')
  async pipelined(@Res() res: any): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 20));
    res.status(200).send({ ok: true });
  }
}

let sequence = 0;
const freshId = (label: string) => `${label}-${process.pid}-${++sequence}`;
const named = (events: CapturedEvent[], name: string) => events.filter((e) => e.event === name);

describe.each(ADAPTERS)('The end of a request over %s', (adapter) => {
  let capture: CaptureServer;
  let app: INestApplication;
  let port: number;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    app = await createTestApp(adapter, sendingTo(capture.url), { controllers: [LateController] });
    port = (app.getHttpServer().address() as AddressInfo).port;
  });

  afterAll(async () => {
    await app.close();
    await capture.stop();
  });

  it('reports an error thrown after the response was sent, under the request id, with the status sent', async () => {
    const id = freshId('after-send');
    const res = await fetch(`http://127.0.0.1:${port}/late/after-send`, { headers: { 'X-Request-ID': id } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sent: true });
    const events = await capture.waitFor(
      () =>
        named(capture.forRequest(id), 'api_error').length > 0 &&
        named(capture.events, '$exception').some((e) => e.properties.request_id === id),
    );
    const [apiRequest] = named(capture.forRequest(id), 'api_request');
    const [apiError] = named(capture.forRequest(id), 'api_error');
    expect(apiRequest.properties).toMatchObject({ endpoint: '/late/after-send', status_code: 200, success: true });
    expect(apiError.properties).toMatchObject({ endpoint: '/late/after-send', status_code: 200, error_type: 'application_error' });
    expect(apiError.properties.error_message).toContain('audit write failed');
    expect(apiError.distinct_id).toBe(apiRequest.distinct_id);
    const exception = named(events, '$exception').find((e) => e.properties.request_id === id)!;
    expect(apiError.properties.$exception_uuid).toBe(exception.uuid);
  });

  it('reports an error thrown after the client went away, as 499', async () => {
    const id = freshId('gone');
    const reached = new Promise<void>((resolve) => (reachedSlow = resolve));
    const req = http.get({ host: '127.0.0.1', port, path: '/late/slow', headers: { 'X-Request-ID': id } });
    req.on('error', () => undefined);
    await reached;
    req.destroy();
    await capture.waitFor(() => named(capture.forRequest(id), 'api_error').length > 0);
    const [apiRequest] = named(capture.forRequest(id), 'api_request');
    const [apiError] = named(capture.forRequest(id), 'api_error');
    expect(apiRequest.properties).toMatchObject({ endpoint: '/late/slow', status_code: 499 });
    expect(apiError.properties).toMatchObject({ endpoint: '/late/slow', status_code: 499 });
    expect(apiError.properties.error_message).toContain('upstream call failed');
  });

  it('answers a handler that fails after sending, and pipelined requests, exactly as Nest does without the module', async () => {
    const bare = await createBareApp(adapter, [LateController]);
    try {
      const bytesOf = async (target: number, path: string) => {
        const res = await fetch(`http://127.0.0.1:${target}${path}`);
        return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
      };
      const barePort = (bare.getHttpServer().address() as AddressInfo).port;
      for (const path of ['/late/after-send', '/late/pipelined/1', '/no/such/route']) {
        expect(await bytesOf(port, path)).toEqual(await bytesOf(barePort, path));
      }
      // Three requests pipelined, then the client half-closes: what comes back on the wire, but for the
      // headers that differ by design (the date, the module's X-Request-ID).
      const pipelined = async (target: number) => {
        const socket = net.connect(target, '127.0.0.1');
        await once(socket, 'connect');
        let raw = '';
        socket.on('data', (chunk: Buffer) => (raw += chunk.toString('latin1')));
        socket.write([0, 1, 2].map((n) => `GET /late/pipelined/${n} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
        socket.end();
        await once(socket, 'close');
        return raw.replace(/^(date|x-request-id): .*\r\n/gim, '');
      };
      expect(await pipelined(port)).toBe(await pipelined(barePort));
    } finally {
      await bare.close();
    }
  });

  it('gives every request pipelined on a connection the client half-closed exactly one api_request', async () => {
    const ids = [freshId('pipe-a'), freshId('pipe-b'), freshId('pipe-c')];
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.on('data', () => undefined);
    socket.write(ids.map((id, n) => `GET /late/pipelined/${n} HTTP/1.1\r\nHost: x\r\nX-Request-ID: ${id}\r\n\r\n`).join(''));
    socket.end();
    await once(socket, 'close');
    await capture.waitFor(() => ids.every((id) => named(capture.forRequest(id), 'api_request').length > 0));
    // A duplicate would arrive with the same batch or the next one: give it the time of a few flushes.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const id of ids) {
      const requests = named(capture.forRequest(id), 'api_request');
      expect(requests).toHaveLength(1);
      expect(requests[0].properties.endpoint).toBe('/late/pipelined/:n');
    }
  });
});

describe('frontendIdentity', () => {
  let capture: CaptureServer;
  afterEach(async () => {
    await capture?.stop();
  });

  it.each([
    ['trusted', 'user-123', 'user-123', undefined],
    ['ignored', '0193a5b2-7c4e-7d1f-9a2b-3c4d5e6f7a8b', undefined, false],
  ] as const)('%s: X-POSTHOG-DISTINCT-ID %s gives distinct_id %s', async (policy, header, expected, personless) => {
    capture = await new CaptureServer().start();
    const app = await createTestApp('express', sendingTo(capture.url, { frontendIdentity: policy }));
    try {
      const id = freshId(`policy-${policy}`);
      const port = (app.getHttpServer().address() as AddressInfo).port;
      await fetch(`http://127.0.0.1:${port}/items/1`, { headers: { 'X-Request-ID': id, 'X-POSTHOG-DISTINCT-ID': header } });
      await capture.waitFor(() => named(capture.forRequest(id), 'api_request').length > 0);
      const [event] = named(capture.forRequest(id), 'api_request');
      if (expected) expect(event.distinct_id).toBe(expected);
      else expect(event.distinct_id).not.toBe(header);
      expect(event.properties.$process_person_profile).toBe(personless);
    } finally {
      await app.close();
    }
  });
});

/** A global guard of the app's, registered in its own module: it turns away `/version` (a `@SkipTelemetry()` route) and `/items/2`. */
@Injectable()
class TurnAwayGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const url = String(context.switchToHttp().getRequest<{ url?: string }>().url);
    return !url.startsWith('/version') && !url.startsWith('/items/2');
  }
}

describe.each(ADAPTERS)("The app's own global guard over %s", (adapter) => {
  let capture: CaptureServer;
  let app: INestApplication;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    app = await createTestApp(adapter, sendingTo(capture.url), { providers: [{ provide: APP_GUARD, useClass: TurnAwayGuard }] });
  });

  afterAll(async () => {
    await app.close();
    await capture.stop();
  });

  it('rejecting a @SkipTelemetry() route sends nothing; rejecting another route records it under its template', async () => {
    const port = (app.getHttpServer().address() as AddressInfo).port;
    const skipped = freshId('guarded-skip');
    const recorded = freshId('guarded');
    expect((await fetch(`http://127.0.0.1:${port}/version`, { headers: { 'X-Request-ID': skipped } })).status).toBe(403);
    expect((await fetch(`http://127.0.0.1:${port}/items/2`, { headers: { 'X-Request-ID': recorded } })).status).toBe(403);
    await capture.waitFor(() => named(capture.forRequest(recorded), 'api_request').length > 0);
    // The skipped request's events, had there been any, would have left in the same batch or the next.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(capture.forRequest(skipped)).toEqual([]);
    expect(named(capture.forRequest(recorded), 'api_request')[0].properties).toMatchObject({ endpoint: '/items/:id', status_code: 403 });
  });
});

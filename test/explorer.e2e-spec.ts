import type { INestApplication } from '@nestjs/common';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { PostHog } from 'posthog-node';
import request from 'supertest';
import { startExplorer } from '../apps/explorer/src/create-explorer-app.js';
import type { ExplorerSettings } from '../apps/explorer/src/explorer.settings.js';
import { createTestApp, sendingTo } from './support/test-app.js';

const MAX_BODY = 256 * 1024;
let sequence = 0;
const fresh = (label: string) => `${label}-${process.pid}-${++sequence}`;

describe('Journey explorer: ingestion', () => {
  let explorer: INestApplication;
  let url: string;

  beforeAll(async () => {
    const settings: ExplorerSettings = {
      port: 0,
      host: '127.0.0.1',
      dbPath: ':memory:',
      retentionDays: 7,
      maxEvents: 100_000,
      maxBodyBytes: MAX_BODY,
    };
    ({ app: explorer, url } = await startExplorer(settings, false));
  });
  afterAll(() => explorer.close());

  async function journey(query: Record<string, string>) {
    const response = await request(url).get('/api/journey').query(query).expect(200);
    return response.body.events as {
      event: string;
      distinct_id: string;
      source: string;
      timestamp: string;
      properties: Record<string, any>;
    }[];
  }
  /** Polls the JSON API until `done` holds (events arrive asynchronously from the clients). */
  async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await read();
      if (done(value) || Date.now() > deadline) return value;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it.each([
    ['gzip', false],
    ['plain JSON', true],
  ])('stores what the real posthog-node client sends (%s)', async (_label, disableCompression) => {
    const user = fresh('node-user');
    const client = new PostHog('phc_test', { host: url, flushAt: 1, flushInterval: 0, disableCompression });
    client.capture({ distinctId: user, event: 'order_placed', properties: { request_id: 'r-node', total: 42, nested: { a: [1, 2] } } });
    client.capture({ distinctId: user, event: 'order_shipped' });
    await client.shutdown();
    const events = await journey({ distinct_id: user });
    expect(events.map((e) => e.event)).toEqual(['order_placed', 'order_shipped']);
    expect(events[0]).toMatchObject({
      distinct_id: user,
      source: 'backend',
      properties: { total: 42, nested: { a: [1, 2] }, $lib: 'posthog-node' },
    });
  });

  it("stores the module's own events, and joins them with the browser's by request id", async () => {
    const app = await createTestApp('express', sendingTo(url));
    try {
      const requestId = fresh('req');
      const browser = crypto.randomUUID(); // an anonymous visitor's id as posthog-js makes it
      const session = fresh('session');
      // The frontend's half, in posthog-js's wire format: gzip, `compression=gzip-js`, distinct id inside the properties.
      const click = {
        uuid: crypto.randomUUID(),
        event: 'button_click',
        timestamp: new Date(Date.now() - 5).toISOString(),
        properties: { distinct_id: browser, $session_id: session, $lib: 'web', request_id: requestId },
      };
      await request(url)
        .post('/i/v0/e/?compression=gzip-js&ver=1.449.2')
        .set('Content-Type', 'text/plain')
        .send(gzipSync(JSON.stringify([click])))
        .expect(200);
      await request(app.getHttpServer())
        .get('/items/1')
        .set('X-Request-ID', requestId)
        .set('X-POSTHOG-DISTINCT-ID', browser)
        .set('X-POSTHOG-SESSION-ID', session)
        .expect(200);
      const events = await until(
        () => journey({ request_id: requestId }),
        (e) => e.length >= 2,
      );
      expect(events.map((e) => `${e.source}:${e.event}`)).toEqual(['frontend:button_click', 'backend:api_request']);
      expect(events[1]).toMatchObject({
        distinct_id: browser,
        properties: { endpoint: '/items/:id', status_code: 200, $session_id: session },
      });
      const sessionEvents = await journey({ session_id: session });
      expect(sessionEvents).toHaveLength(2);
    } finally {
      await app.close();
    }
  });

  it('stores a batch once when the client retries it after losing the answer', async () => {
    // A proxy that passes the first request on to the explorer but drops the answer, as a broken network would.
    let seen = 0;
    const proxy: Server = createServer((incoming, outgoing) => {
      seen += 1;
      const first = seen === 1;
      const upstream = httpRequest(new URL(incoming.url!, url), { method: incoming.method, headers: incoming.headers }, (answer) => {
        if (first) {
          answer.resume();
          answer.on('end', () => outgoing.socket?.destroy());
          return;
        }
        outgoing.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(outgoing);
      });
      incoming.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const user = fresh('retry-user');
      const client = new PostHog('phc_test', {
        host: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
        flushAt: 3,
        flushInterval: 0,
        fetchRetryCount: 3,
        fetchRetryDelay: 50,
      });
      for (const name of ['a', 'b', 'c']) client.capture({ distinctId: user, event: `retried_${name}` });
      await client.shutdown();
      expect(seen).toBeGreaterThanOrEqual(2);
      expect((await journey({ distinct_id: user })).map((e) => e.event)).toEqual(['retried_a', 'retried_b', 'retried_c']);
    } finally {
      proxy.close();
    }
  });

  it('reads the compressions posthog-js sends: gzip-js and base64 form', async () => {
    const user = fresh('js-user');
    const event = (name: string) => ({
      uuid: crypto.randomUUID(),
      event: name,
      timestamp: new Date().toISOString(),
      properties: { distinct_id: user, $lib: 'web' },
    });
    const b64 = Buffer.from(JSON.stringify([event('via_base64')])).toString('base64');
    await request(url)
      .post('/e/?compression=gzip-js')
      .set('Content-Type', 'text/plain')
      .send(gzipSync(JSON.stringify([event('via_gzip')])))
      .expect(200);
    await request(url)
      .post('/e/?compression=base64')
      .type('form')
      .send(`data=${encodeURIComponent(b64)}`)
      .expect(200);
    await request(url)
      .post('/capture/')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify(event('via_plain')))
      .expect(200);
    expect((await journey({ distinct_id: user })).map((e) => e.event).sort()).toEqual(['via_base64', 'via_gzip', 'via_plain']);
  });

  it('answers 413 to a body over the limit, even one that only inflates past it, and keeps serving', async () => {
    const big = JSON.stringify([{ event: 'big', distinct_id: 'x', properties: { blob: 'x'.repeat(MAX_BODY) } }]);
    await request(url).post('/batch/').set('Content-Type', 'application/json').send(big).expect(413);
    const bomb = gzipSync(' '.repeat(MAX_BODY * 40));
    // fetch, not supertest: supertest would serialise a Buffer sent as application/json.
    const inflated = await fetch(`${url}/batch/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
      body: bomb,
    });
    expect(inflated.status).toBe(413);
    await request(url).post('/e/?compression=gzip-js').set('Content-Type', 'text/plain').send(bomb).expect(413);
    const after = await request(url)
      .post('/batch/')
      .send({ batch: [{ event: 'after_413', distinct_id: fresh('u') }] })
      .expect(200);
    expect(after.body).toMatchObject({ status: 1, stored: 1 });
  });

  it('answers 400 with a reason to bodies it cannot read, and keeps serving', async () => {
    const garbage = await request(url).post('/e/?compression=gzip-js').set('Content-Type', 'text/plain').send('not gzip').expect(400);
    expect(garbage.body.error).toMatch(/gzip/);
    await request(url).post('/batch/').set('Content-Type', 'application/json').send('{"batch": [').expect(400);
    await request(url).get('/api/summary').expect(200);
  });

  it("answers posthog-js's start-up calls harmlessly, and lets it post from another origin", async () => {
    const config = await request(url).get('/array/phc_test/config').expect(200);
    expect(config.body).toMatchObject({
      hasFeatureFlags: false,
      sessionRecording: false,
      supportedCompression: expect.arrayContaining(['gzip-js']),
    });
    const flags = await request(url).post('/flags/?v=2&config=true').send({ token: 'phc_test' }).expect(200);
    expect(flags.body).toMatchObject({ flags: {}, errorsWhileComputingFlags: false });
    // Person updates and recordings are answered, not stored.
    const before = (await request(url).get('/api/summary')).body.events;
    await request(url)
      .post('/engage/')
      .send({ $distinct_id: 'x', $set: { a: 1 } })
      .expect(200);
    await request(url)
      .post('/s/')
      .send([{ event: '$snapshot', properties: { distinct_id: 'x' } }])
      .expect(200);
    expect((await request(url).get('/api/summary')).body.events).toBe(before);
    const preflight = await request(url)
      .options('/i/v0/e/')
      .set('Origin', 'http://127.0.0.1:3000')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'content-type')
      .expect(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('http://127.0.0.1:3000');
  });

  it('does not let another origin read the JSON API', async () => {
    const read = await request(url).get('/api/summary').set('Origin', 'http://evil.example').expect(200);
    expect(read.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await request(url)
      .options('/api/journey')
      .set('Origin', 'http://evil.example')
      .set('Access-Control-Request-Method', 'GET');
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('rejects unclear questions to the JSON API with 400', async () => {
    await request(url).get('/api/journey').expect(400);
    await request(url).get('/api/journey').query({ request_id: 'a', session_id: 'b' }).expect(400);
    await request(url).get('/api/requests').query({ since: 'yesterday' }).expect(400);
    await request(url).get('/api/requests').query({ status: '5' }).expect(400);
    await request(url).get('/api/requests').query({ limit: '-3' }).expect(400);
  });
});

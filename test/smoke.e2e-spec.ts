import request from 'supertest';
import { CaptureServer } from './support/capture-server.js';
import { ADAPTERS, createTestApp, sendingTo } from './support/test-app.js';

describe.each(ADAPTERS)('smoke %s', (adapter) => {
  it('works', async () => {
    const capture = await new CaptureServer().start();
    const app = await createTestApp(adapter, sendingTo(capture.url));
    const server = app.getHttpServer();
    const r1 = await request(server).get('/items/1');
    const r2 = await request(server).get('/nope/123?x=1');
    const r3 = await request(server).post('/chat').set('X-POSTHOG-SESSION-ID', 'sess-1').send({ message: 'hi' });
    const r4 = await request(server).get('/me').set('Authorization', 'Bearer user_1');
    const r5 = await request(server).get('/admin');
    console.log(r1.status, r1.headers['x-request-id'], r2.status, r2.headers['x-request-id'], r3.body, r4.status, r5.status, r5.headers['x-request-id']);
    await new Promise((r) => setTimeout(r, 300));
    await app.close();
    console.log(JSON.stringify(capture.events.map((e) => [e.event, e.distinct_id, e.properties]), null, 1));
    await capture.stop();
  });
});

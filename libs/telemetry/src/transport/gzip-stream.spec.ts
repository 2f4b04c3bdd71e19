import { gunzipSync } from 'node:zlib';
import { GzipStream } from './gzip-stream.js';

const body = (n: number) =>
  JSON.stringify(Array.from({ length: 200 * n }, (_, i) => ({ event: 'api_request', n, i, pad: 'x'.repeat(i % 40) })));

describe('GzipStream', () => {
  it('gzips one body after another on one stream, each a complete gzip member', async () => {
    const gzip = new GzipStream();
    try {
      for (const n of [1, 2, 3]) expect(gunzipSync(await gzip.compress(body(n))).toString()).toBe(body(n));
    } finally {
      gzip.close();
    }
  });

  it('takes bodies asked for at once in turn, none mixed with another', async () => {
    const gzip = new GzipStream();
    try {
      const out = await Promise.all([1, 2, 3, 4].map((n) => gzip.compress(body(n))));
      expect(out.map((b) => gunzipSync(b).toString())).toEqual([1, 2, 3, 4].map(body));
    } finally {
      gzip.close();
    }
  });

  it('opens another stream after close', async () => {
    const gzip = new GzipStream();
    await gzip.compress(body(1));
    gzip.close();
    expect(gunzipSync(await gzip.compress(body(2))).toString()).toBe(body(2));
    gzip.close();
  });
});

import { scrubSentryEvent, withNodeRejectionHandling, type SentryEvent } from '../outlets/sentry-bridge.js';
import { redactSecrets, REDACTED } from './redact.js';
import { bytesMarker, scrubbedProperties, scrubbedValue, scrubFrame, withoutQuery } from './sdk-scrub.js';

const TOKEN = 'ghp_' + 'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5';

describe('scrubbedValue', () => {
  it('redacts strings, key names and values of sensitive keys, nested and in arrays, without changing the original', () => {
    const original = { note: `token ${TOKEN}`, password: 'plain', deep: { list: [`x ${TOKEN}`, 1, true, null] }, [`key ${TOKEN}`]: 1 };
    const copy = JSON.stringify(original);
    const out = JSON.stringify(scrubbedValue(original, redactSecrets));
    expect(out).not.toContain(TOKEN);
    expect(out).not.toContain('plain');
    expect(out).toContain(REDACTED);
    expect(JSON.stringify(original)).toBe(copy);
  });

  it('sends bytes as a short marker, never byte by byte', () => {
    const out = scrubbedValue(
      { buffer: Buffer.from('secret bytes'), view: new Uint8Array(4), raw: new ArrayBuffer(8), words: new Uint32Array(2) },
      redactSecrets,
    ) as Record<string, unknown>;
    expect(out).toEqual({
      buffer: '[Buffer 12 bytes]',
      view: '[Uint8Array 4 bytes]',
      raw: '[ArrayBuffer 8 bytes]',
      words: '[Uint32Array 8 bytes]',
    });
    expect(bytesMarker(Buffer.alloc(123))).toBe('[Buffer 123 bytes]');
  });

  it('caps depth, width, the values visited and the characters kept, and survives cycles and throwing getters', () => {
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    const hostile = Object.defineProperty({}, 'boom', {
      enumerable: true,
      get() {
        throw new Error('getter');
      },
    });
    const deep = { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } };
    const out = JSON.stringify(
      scrubbedValue({ cyclic, hostile, deep, wide: Array.from({ length: 500 }, (_, i) => i), long: 'z'.repeat(100_000) }, redactSecrets),
    );
    expect(out).toContain('[Circular]');
    expect(out).toContain('[unreadable]');
    expect(out).toContain('[Too deep]');
    expect(out).toContain('[400 more items]');
    expect(out.length).toBeLessThan(40_000);
    // The whole tree shares one budget: a thousand long strings cost no more than the cap.
    const many = JSON.stringify(
      scrubbedValue(
        Array.from({ length: 100 }, () => 'y'.repeat(5000)),
        redactSecrets,
      ),
    );
    expect(many.length).toBeLessThan(40_000);
  });

  it('reads each long string only up to twice the string limit (redaction stays linear in what is kept)', () => {
    const seen: number[] = [];
    scrubbedValue({ huge: 'a'.repeat(1_000_000) }, (text) => (seen.push(text.length), text));
    expect(Math.max(...seen)).toBeLessThanOrEqual(4000);
  });

  it('keeps the properties `keep` names as they are', () => {
    const list = [{ value: 'already scrubbed' }];
    const out = scrubbedProperties({ $exception_list: list, note: `t ${TOKEN}` }, redactSecrets, (key) => key === '$exception_list');
    expect(out.$exception_list).toBe(list);
    expect(String(out.note)).not.toContain(TOKEN);
  });
});

describe('scrubFrame', () => {
  it('redacts paths, module names and source lines, caps them, and drops local variables', () => {
    const frame = {
      filename: `/srv/${TOKEN}/a.js`,
      abs_path: `/srv/${TOKEN}/a.js`,
      module: `srv.${TOKEN}:a`,
      context_line: `const key = '${TOKEN}';`,
      pre_context: Array.from({ length: 30 }, (_, i) => `line ${i} ${TOKEN}`),
      post_context: ['x'.repeat(5000)],
      vars: { password: 'hunter2' },
    };
    scrubFrame(frame, redactSecrets);
    expect(JSON.stringify(frame)).not.toContain(TOKEN);
    expect(frame).not.toHaveProperty('vars');
    expect(frame.pre_context).toHaveLength(10);
    expect(frame.post_context[0]!.length).toBeLessThanOrEqual(500);
    expect(frame.filename).toBe(`/srv/${REDACTED}/a.js`);
  });
});

describe('scrubSentryEvent', () => {
  it("drops breadcrumbs' query strings and copies the console's arguments rather than changing them", () => {
    const argument = { apiKey: 'k', note: `t ${TOKEN}`, payload: Buffer.from('bytes') };
    const crumb = { message: `log ${TOKEN}`, data: { arguments: [argument] } };
    const event: SentryEvent = {
      breadcrumbs: [
        {
          data: { url: 'https://api.example.com/v1/x?page=2#frag', 'url.query': 'page=2', 'url.fragment': 'frag', 'http.query': 'page=2' },
        },
        crumb,
      ],
    };
    const out = scrubSentryEvent(redactSecrets)(event)!;
    expect(out.breadcrumbs![0]!.data).toEqual({ url: 'https://api.example.com/v1/x' });
    expect(JSON.stringify(out.breadcrumbs![1])).not.toContain(TOKEN);
    expect(JSON.stringify(out.breadcrumbs![1])).toContain('[Buffer 5 bytes]');
    expect(crumb.message).toContain(TOKEN);
    expect(argument.apiKey).toBe('k');
    expect(Buffer.isBuffer(argument.payload)).toBe(true);
  });

  it('names the route instead of the raw path in request.url and transaction, and keeps only harmless headers', () => {
    const event: SentryEvent = {
      transaction: 'GET /reset/acct77?x=1',
      request: {
        url: 'http://127.0.0.1:3000/reset/acct77?x=1',
        query_string: 'x=1',
        cookies: { sid: 's' },
        data: '{}',
        headers: { 'user-agent': 'ua', 'x-api-key': 'k' },
      },
    };
    const out = scrubSentryEvent(redactSecrets, { endpoint: '/reset/:token' })(event)!;
    expect(out.transaction).toBe('GET /reset/:token');
    expect(out.request).toEqual({ url: 'http://127.0.0.1:3000/reset/:token', headers: { 'user-agent': 'ua' } });
  });

  it('redacts and bounds a thrown object as Sentry serialised it (extra.__serialized__)', () => {
    const event: SentryEvent = { extra: { __serialized__: { password: 'p', note: `t ${TOKEN}`, blob: Buffer.from('abc') } } };
    const out = scrubSentryEvent(redactSecrets)(event)!;
    expect(out.extra).toEqual({ __serialized__: { password: REDACTED, note: `t ${REDACTED}`, blob: '[Buffer 3 bytes]' } });
  });
});

describe('withNodeRejectionHandling', () => {
  const defaults = [{ name: 'Http' }, { name: 'OnUnhandledRejection' }, { name: 'OnUncaughtException' }];

  it("leaves Sentry's default rejection handler out, whatever form the app's integrations take", () => {
    const names = (list: { name?: string }[]) => list.map((i) => i.name);
    expect(names(withNodeRejectionHandling(undefined)(defaults))).toEqual(['Http', 'OnUncaughtException']);
    expect(names(withNodeRejectionHandling((all) => all.filter((i) => i.name !== 'Http'))(defaults))).toEqual(['OnUncaughtException']);
    expect(names(withNodeRejectionHandling([{ name: 'Extra' }])(defaults))).toEqual(['Http', 'OnUncaughtException', 'Extra']);
  });

  it('keeps one the app names itself', () => {
    const own = { name: 'OnUnhandledRejection' };
    expect(withNodeRejectionHandling([own])(defaults)).toContain(own);
    expect(withNodeRejectionHandling((all) => [...all.filter((i) => i.name !== 'OnUnhandledRejection'), own])(defaults)).toContain(own);
  });
});

describe('redaction of JSON escaped twice (a thrown object carrying escaped JSON)', () => {
  it('redacts the value of a sensitive key, and keeps the others', () => {
    const text = JSON.stringify({ message: 'body "{\\"user\\":\\"ann\\",\\"password\\":\\"Z8MbCFz1nlpDSzhc\\"}"' });
    const out = redactSecrets(text);
    expect(out).not.toContain('Z8MbCFz1nlpDSzhc');
    expect(out).toContain('ann');
  });
});

describe('withoutQuery', () => {
  it('cuts the query string and the fragment', () => {
    expect(withoutQuery('/a/b?c=d#e')).toBe('/a/b');
    expect(withoutQuery('/a#e?x')).toBe('/a');
    expect(withoutQuery('/a')).toBe('/a');
  });
});

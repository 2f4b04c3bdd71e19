import { Controller, Get, type INestApplication } from '@nestjs/common';
import { Agent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createBareApp } from '../support/bare-app.js';
import { CaptureServer, type CapturedEvent } from '../support/capture-server.js';
import { ADAPTERS, createTestApp, sendingTo } from '../support/test-app.js';
import { FaultReport } from './fault-report.js';

/**
 * What a hostile client or a hostile value must never do to telemetry: change a
 * response, crash the app, or get raw, huge or control-character-laden data
 * into an event. The real module (both adapters) sends to a capture server on
 * 127.0.0.1; every response of a route the demo has is compared with what the
 * same routes answer without the module (`createBareApp`).
 */

const report = new FaultReport('hostile-input');

/** What every correlation id sent back must look like. */
const VALID_REQUEST_ID = /^[A-Za-z0-9\-_.:]{1,128}$/;
/** C0 and C1 control characters, DEL included: never in an identity property. */
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;
/** Longest identity property (`request_id`, `$session_id`, `distinct_id`, `user_id`). */
const MAX_IDENTITY = 200;
/** Longest property of any event, but the traceback (bounded by `tracebackLimit`, 5000 by default). */
const MAX_PROPERTY = 2_000;
const TRACEBACK_LIMIT = 5_000;
/** What Nest answers for any non-HTTP exception. */
const NEST_500 = { statusCode: 500, message: 'Internal server error' };

/** What a UTF-8 client puts on the wire, as Node (latin1) hands it to the app. */
const utf8Bytes = (text: string) => Buffer.from(text, 'utf8').toString('latin1');

/** Errors no sane app throws, on routes that exist only here. */
const trap = (name: string) => () => {
  throw new Error(`proxy trap ${name}`);
};

@Controller('hostile-input')
class HostileErrorsController {
  @Get('huge')
  huge() {
    const error = new Error('x'.repeat(1_000_000));
    error.stack = `Error: big\n${'    at frame (file.js:1:1)\n'.repeat(40_000)}`; // ~1 MB
    throw error;
  }

  @Get('deep-cause')
  deepCause() {
    let error = new Error('root cause');
    for (let i = 0; i < 1_000; i++) error = new Error(`level ${i}`, { cause: error });
    throw error;
  }

  @Get('aggregate')
  aggregate() {
    throw new AggregateError(
      Array.from({ length: 5_000 }, (_, i) => new Error(`failure ${i}`)),
      'many things failed',
    );
  }

  @Get('throwing-getters')
  throwingGetters() {
    const value: Record<string, unknown> = {
      toString() {
        throw new Error('toString throws');
      },
    };
    Object.defineProperty(value, 'message', {
      enumerable: true,
      get() {
        throw new Error('message getter throws');
      },
    });
    throw value;
  }

  @Get('symbol')
  symbol() {
    throw Symbol('boom');
  }

  @Get('proxy')
  proxy() {
    throw new Proxy(
      {},
      {
        get: trap('get'),
        set: trap('set'),
        has: trap('has'),
        ownKeys: trap('ownKeys'),
        getPrototypeOf: trap('getPrototypeOf'),
        setPrototypeOf: trap('setPrototypeOf'),
        getOwnPropertyDescriptor: trap('getOwnPropertyDescriptor'),
        defineProperty: trap('defineProperty'),
        deleteProperty: trap('deleteProperty'),
        isExtensible: trap('isExtensible'),
        preventExtensions: trap('preventExtensions'),
      },
    );
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

type Headers = OutgoingHttpHeaders | string[];

/** Where a request goes: a listening app and a keep-alive agent of its own. */
interface Target {
  port: number;
  agent: Agent;
}

function targetOf(app: INestApplication): Target {
  return { port: (app.getHttpServer().address() as AddressInfo).port, agent: new Agent({ keepAlive: true, maxSockets: 16 }) };
}

/**
 * One request over raw `http`: the path goes out byte for byte (no URL
 * normalisation), and headers may be repeated (array values, or the raw
 * `[name, value, name, value]` form, to which the Host header Node then leaves
 * out is added). A connection the server drops comes back as status 0.
 */
function send(target: Target, path: string, headers: Headers = {}, method = 'GET', body?: string): Promise<Answer> {
  const outgoing =
    Array.isArray(headers) && !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')
      ? [...headers, 'Host', `127.0.0.1:${target.port}`]
      : headers;
  return new Promise((resolve) => {
    const dropped = (error: NodeJS.ErrnoException) =>
      resolve({ status: 0, headers: {}, body: `connection dropped: ${error.code ?? error.message}` });
    const req = httpRequest({ host: '127.0.0.1', port: target.port, agent: target.agent, method, path, headers: outgoing }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', dropped);
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer to ${method} ${path.slice(0, 80)}`)));
    req.on('error', dropped);
    req.end(body);
  });
}

/** Runs `count` tasks, at most `limit` at a time. */
async function pool<T>(count: number, limit: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return results;
}

/** The figures of one group: one row of the fault table. */
class Tally {
  requestsSent = 0;
  answeredWrongly = 0;
  eventsExpected = 0;
  eventsDelivered = 0;
  readonly wrong: string[] = [];
  readonly notes: string[] = [];

  row(fault: string) {
    const notes = [...this.notes, ...this.wrong.slice(0, 3)];
    return {
      fault,
      requestsSent: this.requestsSent,
      answeredWrongly: this.answeredWrongly,
      eventsExpected: this.eventsExpected,
      eventsDelivered: this.eventsDelivered,
      ...(notes.length ? { note: notes.join('; ') } : {}),
    };
  }
}

let sequence = 0;
/** A correlation id no other request uses, so each check reads only its own events. */
const freshId = (label: string) => `${label}-${process.pid}-${++sequence}`;

/** The string properties of an event (and its distinct_id) that are too long, with their lengths. */
function oversized(event: CapturedEvent): string[] {
  const out: string[] = [];
  if (typeof event.distinct_id === 'string' && event.distinct_id.length > MAX_IDENTITY)
    out.push(`distinct_id (${event.distinct_id.length})`);
  for (const [key, value] of Object.entries(event.properties ?? {})) {
    const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
    const limit = key === 'traceback' ? TRACEBACK_LIMIT : MAX_PROPERTY;
    if (text.length > limit) out.push(`${event.event}.${key} (${text.length})`);
  }
  return out;
}

/** The identity properties of an event that are too long or carry control characters. */
function badIdentity(event: CapturedEvent): string[] {
  const fields: [string, unknown][] = [
    ['distinct_id', event.distinct_id],
    ['request_id', event.properties?.request_id],
    ['$session_id', event.properties?.$session_id],
    ['user_id', event.properties?.user_id],
  ];
  const out: string[] = [];
  for (const [name, value] of fields) {
    if (value === undefined) continue;
    if (typeof value !== 'string') out.push(`${event.event}.${name} is ${typeof value}`);
    else if (value.length > MAX_IDENTITY) out.push(`${event.event}.${name} is ${value.length} chars`);
    else if (CONTROL.test(value)) out.push(`${event.event}.${name} has control characters: ${JSON.stringify(value.slice(0, 60))}`);
  }
  return out;
}

/** Values of tracing headers a client may send, as the app receives them (latin1 strings Node accepts). */
const ALL_LATIN1_HIGH = String.fromCharCode(...Array.from({ length: 0x80 }, (_, i) => 0x80 + i));
const HEADER_VALUES: [string, string | string[]][] = [
  ['10 kB of letters', 'a'.repeat(10_000)],
  ['10 kB of mixed printable characters', 'Zz9-_.:~!@#$%^&*()[]{}<>?/|;= '.repeat(400).slice(0, 10_000)],
  ['a tab inside', 'abc\tdef'],
  ['tabs around and inside', '\tid\twith\ttabs\t'],
  ['every byte 0x80-0xff (C1 controls included)', `id-${ALL_LATIN1_HIGH}`],
  ['only C1 control bytes', '\x85\x8d\x9b\x9f'],
  ['printable latin1', 'ÿ-id-é-ñ-ß'],
  ['UTF-8 CJK and emoji', utf8Bytes('用户-😀-id')],
  ['UTF-8 right-to-left override', utf8Bytes('id-\u202egnp.exe')],
  ['UTF-8 BOM and zero-width joiner', utf8Bytes('\ufeffid\u200d')],
  ['a comma-separated list', 'abc, def'],
  ['HTML', '<script>alert(1)</script>'],
  ['a JNDI lookup', '${jndi:ldap://evil.example/a}'],
  ['repeated (two header lines)', ['first-value', 'second-value']],
  ['repeated identical valid ids', ['same-id-1', 'same-id-1']],
  ['repeated, one of 7 kB', ['x'.repeat(7_000), 'short']],
];

describe.each(ADAPTERS)('hostile input over %s', (adapter) => {
  let capture: CaptureServer;
  let app: INestApplication;
  let bare: INestApplication;
  let withModule: Target;
  let without: Target;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    app = await createTestApp(adapter, sendingTo(capture.url), { controllers: [HostileErrorsController] });
    bare = await createBareApp(adapter);
    withModule = targetOf(app);
    without = targetOf(bare);
  });

  afterAll(async () => {
    withModule?.agent.destroy();
    without?.agent.destroy();
    await app?.close();
    await bare?.close();
    await capture?.stop();
  });

  /**
   * Sends the same request to the app with the module and to the bare app, and
   * counts it answered wrongly when status or body differ. `compareBody: false`
   * for routes whose body legitimately differs (the demo's /chat echoes the request id).
   */
  async function compared(
    tally: Tally,
    path: string,
    headers: Headers = {},
    options: { method?: string; body?: string; compareBody?: boolean } = {},
  ): Promise<Answer> {
    const [ours, theirs] = await Promise.all([
      send(withModule, path, headers, options.method, options.body),
      send(without, path, headers, options.method, options.body),
    ]);
    tally.requestsSent++;
    const bodyDiffers = options.compareBody !== false && ours.body !== theirs.body;
    if (ours.status !== theirs.status || bodyDiffers) {
      tally.answeredWrongly++;
      tally.wrong.push(
        `${options.method ?? 'GET'} ${path.slice(0, 60)}: ${ours.status} ${ours.body.slice(0, 120)} instead of ${theirs.status} ${theirs.body.slice(0, 120)}`,
      );
    }
    return ours;
  }

  /**
   * The events of each request id, once each has its `api_request` (and its `api_error` with `withErrors`: it
   * leaves once its `$exception` is built and queued), and 150 ms more, so a duplicate would show.
   */
  async function eventsOf(ids: string[], timeoutMs = 20_000, withErrors = false): Promise<Map<string, CapturedEvent[]>> {
    const wanted = new Set(ids);
    const group = () => {
      const byId = new Map<string, CapturedEvent[]>(ids.map((id) => [id, []]));
      for (const event of capture.events) {
        const id = event.properties?.request_id;
        if (wanted.has(id)) byId.get(id)!.push(event);
      }
      return byId;
    };
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const byId = group();
      const has = (events: CapturedEvent[], name: string) => events.some((e) => e.event === name);
      if ([...byId.values()].every((events) => has(events, 'api_request') && (!withErrors || has(events, 'api_error')))) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
    return group();
  }

  const named = (events: CapturedEvent[], name: string) => events.filter((e) => e.event === name);

  describe('hostile tracing headers (X-Request-ID, X-POSTHOG-SESSION-ID, X-POSTHOG-DISTINCT-ID)', () => {
    const tally = new Tally();
    afterAll(() => report.add(tally.row(`hostile headers (${adapter})`)));

    /** A request id of ours plus the hostile header: the events can be found whatever the header does. */
    const REQUEST_ID_VALUES = HEADER_VALUES.filter(([, v]) => !(typeof v === 'string' && VALID_REQUEST_ID.test(v.trim())));

    it.each(REQUEST_ID_VALUES)('X-Request-ID: %s is replaced by a valid id, never reflected', async (_label, value) => {
      const answers: Answer[] = [];
      for (const path of ['/items/1', '/items/abc', '/no/such/route']) answers.push(await compared(tally, path, { 'X-Request-ID': value }));
      const hostile = Array.isArray(value) ? [...value, value.join(', ')] : [value, value.trim()];
      const ids: string[] = [];
      for (const answer of answers) {
        const id = answer.headers['x-request-id'];
        expect(typeof id).toBe('string');
        expect(id).toMatch(VALID_REQUEST_ID);
        expect(hostile).not.toContain(id);
        ids.push(id as string);
      }
      await expectOneCleanApiRequestEach(ids);
    });

    /** Each request has exactly one `api_request`, no raw or oversized identity in any event, and no answer differed. */
    async function expectOneCleanApiRequestEach(ids: string[]): Promise<void> {
      tally.eventsExpected += ids.length;
      const byId = await eventsOf(ids);
      for (const id of ids) {
        const events = byId.get(id)!;
        tally.eventsDelivered += named(events, 'api_request').length;
        expect(named(events, 'api_request')).toHaveLength(1);
        expect(events.flatMap(badIdentity)).toEqual([]);
        expect(events.flatMap(oversized)).toEqual([]);
      }
      expect(tally.wrong).toEqual([]);
    }

    it.each(HEADER_VALUES)('X-POSTHOG-SESSION-ID and X-POSTHOG-DISTINCT-ID: %s never reach an event raw', async (_label, value) => {
      const ids: string[] = [];
      const withHeader = (name: string, extra: Record<string, string> = {}) => {
        const id = freshId('hdr');
        ids.push(id);
        return { 'X-Request-ID': id, [name]: value, ...extra };
      };
      for (const name of ['X-POSTHOG-SESSION-ID', 'X-POSTHOG-DISTINCT-ID']) {
        await compared(tally, '/items/1', withHeader(name));
        await compared(tally, '/items/abc', withHeader(name));
        // The demo's service captures through the module and through the posthog-node client: both paths carry the context.
        await compared(tally, '/chat', withHeader(name, { 'Content-Type': 'application/json' }), {
          method: 'POST',
          body: '{"message":"hi"}',
          compareBody: false,
        });
      }
      await expectOneCleanApiRequestEach(ids);
    });

    it.each(HEADER_VALUES)(
      'Authorization: Bearer user_1 on /me: distinct_id is user_1 whatever X-POSTHOG-DISTINCT-ID says (%s)',
      async (_label, value) => {
        const id = freshId('me');
        const answer = await compared(tally, '/me', { 'X-Request-ID': id, Authorization: 'Bearer user_1', 'X-POSTHOG-DISTINCT-ID': value });
        expect(answer.status).toBe(200);
        tally.eventsExpected++;
        const events = (await eventsOf([id])).get(id)!;
        tally.eventsDelivered += named(events, 'api_request').length;
        expect(named(events, 'api_request')).toHaveLength(1);
        for (const event of events) {
          expect(event.distinct_id).toBe('user_1');
          expect(event.properties.user_id).toBe('user_1');
        }
        expect(events.flatMap(badIdentity)).toEqual([]);
        expect(tally.wrong).toEqual([]);
      },
    );

    it('all three headers hostile at once, each header repeated (raw header list)', async () => {
      const ids: string[] = [];
      for (const [, value] of HEADER_VALUES) {
        const one = Array.isArray(value) ? value[0] : value;
        if (one.length > 3_000) continue; // three 10 kB headers are over Node's 16 kB limit: see the next test
        const raw = [
          'X-Request-ID',
          one,
          'X-Request-ID',
          'second-id',
          'X-POSTHOG-SESSION-ID',
          one,
          'X-POSTHOG-SESSION-ID',
          'other-session',
          'X-POSTHOG-DISTINCT-ID',
          one,
          'X-POSTHOG-DISTINCT-ID',
          'other-distinct',
        ];
        const answer = await compared(tally, '/items/1', raw);
        // The repeated X-Request-ID makes a fresh id: the events are found by the one sent back.
        expect(answer.headers['x-request-id']).toMatch(VALID_REQUEST_ID);
        ids.push(answer.headers['x-request-id'] as string);
      }
      await expectOneCleanApiRequestEach(ids);
    });

    it("a header over Node's 16 kB limit is refused before the app (431, or the connection dropped), as without the module", async () => {
      // Node refuses it before the request event: the module never sees it. Fastify's clientError handler
      // writes the 431 and destroys the socket at once, so the client may see a reset instead.
      const refused = (a: Answer) => a.status === 431 || a.status === 0;
      for (const name of ['X-Request-ID', 'X-POSTHOG-SESSION-ID', 'X-POSTHOG-DISTINCT-ID']) {
        const headers = { [name]: 'a'.repeat(17_000) };
        // Connections of their own: the refused one is destroyed, and must not be one the other tests reuse.
        const once = (t: Target): Target => ({ port: t.port, agent: new Agent({ keepAlive: false }) });
        const [ours, theirs] = await Promise.all([send(once(withModule), '/items/1', headers), send(once(without), '/items/1', headers)]);
        tally.requestsSent++;
        if (!refused(ours) || !refused(theirs)) {
          tally.answeredWrongly++;
          tally.wrong.push(`17 kB ${name}: ${ours.status} instead of ${theirs.status}`);
        }
        expect([431, 0]).toContain(ours.status);
      }
      const after = await compared(tally, '/items/1');
      expect(after.status).toBe(200);
      expect(tally.wrong).toEqual([]);
    });

    it('a repeated X-POSTHOG-DISTINCT-ID or X-POSTHOG-SESSION-ID is not used as the comma-joined pair Node makes of it', async () => {
      // Node joins repeated custom headers into "a, b"; the module means to take the first value (request-entry.ts, tracingHeader).
      const id = freshId('repeat');
      await compared(tally, '/items/1', {
        'X-Request-ID': id,
        'X-POSTHOG-DISTINCT-ID': ['browser-a', 'browser-b'],
        'X-POSTHOG-SESSION-ID': ['session-a', 'session-b'],
      });
      tally.eventsExpected++;
      const events = (await eventsOf([id])).get(id)!;
      tally.eventsDelivered += named(events, 'api_request').length;
      const [event] = named(events, 'api_request');
      expect(event.distinct_id).not.toBe('browser-a, browser-b');
      expect(event.properties.$session_id).not.toBe('session-a, session-b');
    });
  });

  describe('hostile thrown values', () => {
    const tally = new Tally();
    afterAll(() => report.add(tally.row(`hostile errors (${adapter})`)));

    it.each([
      ['an Error with a 1 MB message and a 1 MB stack', '/hostile-input/huge'],
      ['an Error with a 1000-deep cause chain', '/hostile-input/deep-cause'],
      ['an AggregateError of 5000 errors', '/hostile-input/aggregate'],
      ['an object whose toString and message getter throw', '/hostile-input/throwing-getters'],
      ["Symbol('boom')", '/hostile-input/symbol'],
      ['a Proxy that throws on every trap', '/hostile-input/proxy'],
    ])("%s: 500 with Nest's body, exactly one bounded api_error, no crash", async (_label, path) => {
      const id = freshId('err');
      const started = performance.now();
      const answer = await send(withModule, path, { 'X-Request-ID': id });
      const ms = performance.now() - started;
      tally.requestsSent++;
      const body = (() => {
        try {
          return JSON.parse(answer.body);
        } catch {
          return answer.body;
        }
      })();
      if (answer.status !== 500 || JSON.stringify(body) !== JSON.stringify(NEST_500)) {
        tally.answeredWrongly++;
        tally.wrong.push(`${path}: ${answer.status} ${answer.body.slice(0, 120)}`);
      }
      expect(answer.status).toBe(500);
      expect(body).toEqual(NEST_500);
      expect(answer.headers['x-request-id']).toBe(id);

      tally.eventsExpected += 2;
      const events = (await eventsOf([id], 20_000, true)).get(id)!;
      const errors = named(events, 'api_error');
      tally.eventsDelivered += named(events, 'api_request').length + errors.length;
      expect(named(events, 'api_request')).toHaveLength(1);
      expect(errors).toHaveLength(1);
      const [error] = errors;
      expect(JSON.stringify(error).length).toBeLessThan(20_000);
      expect(error.properties).toMatchObject({ error_type: 'application_error', status_code: 500, endpoint: path, method: 'GET' });
      expect(typeof error.properties.error_message).toBe('string');
      expect(typeof error.properties.exception_type).toBe('string');
      expect(typeof error.properties.traceback).toBe('string');
      expect(oversized(error)).toEqual([]);
      expect(ms).toBeLessThan(5_000);

      // No crash: the app still answers, as it would without the module.
      const after = await compared(tally, '/items/1');
      expect(after.status).toBe(200);
      expect(tally.wrong).toEqual([]);
    });
  });

  describe('hostile paths', () => {
    const tally = new Tally();
    afterAll(() => report.add(tally.row(`hostile paths and a scanner flood (${adapter})`)));
    /** Put in query strings: must never turn up in an event. */
    const QUERY_MARK = 'qmark7f3a';
    const PATH_MARK = 'pmark9c1d';
    /** Every event of this group, for the search for raw paths at the end. */
    const groupEvents: CapturedEvent[] = [];

    const manyParams = Array.from({ length: 500 }, (_, i) => `p${i}=v${i}`).join('&');
    const PATHS: [string, string][] = [
      ['a 10 000-character unknown path', `/${PATH_MARK}/${'a'.repeat(9_980)}`],
      ['a 10 000-character route parameter (digits)', `/items/${'9'.repeat(9_993)}`],
      ['a 10 000-character route parameter (letters)', `/items/${PATH_MARK}${'x'.repeat(9_984)}`],
      ['500 query parameters on a route', `/items/1?${manyParams}&${QUERY_MARK}=1`],
      ['500 query parameters on an unknown path', `/${PATH_MARK}?${manyParams}&${QUERY_MARK}=1`],
      ['a 10 000-character query value', `/items/2?q=${QUERY_MARK}${'z'.repeat(9_980)}`],
      ['invalid percent-encoding in a parameter (truncated)', '/items/%E0%A4%A'],
      ['invalid percent-encoding (/%%)', '/%%'],
      ['invalid percent-encoding in a parameter (%zz)', '/items/%zz'],
      ['an encoded NUL in a parameter', '/items/%00'],
      ['an overlong UTF-8 slash', '/items/%C0%AF'],
      ['encoded dot segments', '/%2e%2e/%2e%2e/etc/passwd'],
      ['raw dot segments', '/items/../../etc/passwd'],
      ['a double slash', '//items//1'],
    ];

    it.each(PATHS)('%s: answered as without the module, one bounded api_request, no raw path', async (_label, path) => {
      const id = freshId('path');
      const answer = await compared(tally, path, { 'X-Request-ID': id });
      expect(answer.headers['x-request-id']).toBe(id);
      tally.eventsExpected++;
      const events = (await eventsOf([id])).get(id)!;
      groupEvents.push(...events);
      tally.eventsDelivered += named(events, 'api_request').length;
      expect(named(events, 'api_request')).toHaveLength(1);
      expect(events.flatMap(oversized)).toEqual([]);
      for (const event of events) {
        expect(['(unmatched)', '/items/:id', '/items']).toContain(event.properties.endpoint);
      }
      const json = JSON.stringify(events);
      expect(json).not.toContain(QUERY_MARK);
      expect(json).not.toContain(PATH_MARK);
      expect(json).not.toContain('a'.repeat(100));
      expect(json).not.toContain('9'.repeat(100));
      expect(tally.wrong).toEqual([]);
    });

    it('a flood of 2000 requests to distinct unknown routes, 16 at a time: answered as without the module, all under one endpoint', async () => {
      const FLOOD = 2_000;
      const ids = Array.from({ length: FLOOD }, (_, i) => freshId(`flood${i}`));
      const started = performance.now();
      await pool(FLOOD, 16, (i) =>
        compared(tally, `/scan/${i}/wp-login.php?${QUERY_MARK}=${i}&redirect_to=%2Fwp-admin%2F`, { 'X-Request-ID': ids[i] }),
      );
      const floodMs = performance.now() - started;
      tally.eventsExpected += FLOOD;
      const byId = await eventsOf(ids, 30_000);
      const events = [...byId.values()].flat();
      groupEvents.push(...events);
      const requests = named(events, 'api_request');
      tally.eventsDelivered += requests.length;
      tally.notes.push(`flood of ${FLOOD} unknown routes sent in ${Math.round(floodMs)} ms (with the bare app's twin requests)`);

      expect(requests).toHaveLength(FLOOD);
      expect([...new Set(requests.map((e) => e.properties.endpoint))]).toEqual(['(unmatched)']);
      expect(requests.every((e) => e.properties.status_code === 404 && e.properties.success === false)).toBe(true);
      expect(named(events, 'api_error')).toEqual([]);
      expect(events.flatMap(oversized)).toEqual([]);
      const json = JSON.stringify(events);
      expect(json).not.toContain('wp-login');
      expect(json).not.toContain(QUERY_MARK);
      expect(tally.wrong).toEqual([]);
    });

    it('no raw path or query string reached any event of this group', () => {
      expect(groupEvents.length).toBeGreaterThan(0);
      const json = JSON.stringify(groupEvents);
      expect(json).not.toContain('wp-login');
      expect(json).not.toContain(QUERY_MARK);
      expect(json).not.toContain(PATH_MARK);
    });
  });
});

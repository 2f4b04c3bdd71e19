import * as Sentry from '@sentry/node';
import { Controller, Get, Inject, Param, type INestApplication } from '@nestjs/common';
import { POSTHOG_CLIENT, TelemetryService } from 'nestjs-posthog-telemetry';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { ClientRequest, createServer, get as httpGet, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';
import type { PostHog } from 'posthog-node';
import request from 'supertest';
import { CaptureServer, type CapturedEvent } from '../support/capture-server.js';
import { SECRET_SHAPES, type SecretShape } from '../support/secret-shapes.js';
import { SentryServer, sentryFor, type SentryEnvelopeEvent } from '../support/sentry-server.js';
import { createTestApp, sendingTo } from '../support/test-app.js';
import { FaultReport } from './fault-report.js';

/**
 * What the SDKs attach on their own, or take from the app as they find it, leaves the process scrubbed: a real
 * app (the module with posthog-node, and `@sentry/node` initialised by the module from its `sentry.dsn`) sends
 * to a capture server and a Sentry server on 127.0.0.1, and every secret shape is looked for in what arrives.
 */

const report = new FaultReport('sdk-scrub');

/** Where the SDKs pick up text the module never built itself. */
const POSITIONS = [
  'console-breadcrumb',
  'http-breadcrumb',
  'thrown-object',
  'app-sentry-capture',
  'client-capture-property',
  'client-capture-nested',
  'client-capture-array',
  'client-capture-key-name',
  'client-capture-event-name',
  'client-capture-buffer',
] as const;
type Position = (typeof POSITIONS)[number];

/** Shapes in batches of at most ~1500 characters: one request carries a batch whole. */
const BATCHES: SecretShape[][] = [];
for (const shape of SECRET_SHAPES) {
  const last = BATCHES.at(-1);
  if (last && last.reduce((n, s) => n + s.text.length + 3, 0) + shape.text.length < 1500) last.push(shape);
  else BATCHES.push([shape]);
}
const marker = (position: Position, batch: number) => `probe_${position.replaceAll('-', '_')}_b${batch}`;
const batchText = (batch: number) => BATCHES[batch]!.map((s) => s.text).join(' | ');

/** A query value that is no secret by its shape: query strings go whole. */
const QUERY_NEEDLE = 'qv7Plain42Needle';
/** A path segment that is no secret by its shape: the raw path goes, the route template stays. */
const PATH_NEEDLE = 'acct0077needle';
const COOKIE_NEEDLE = 'cookieNeedle5150';
const HEADER_NEEDLE = 'customHeaderNeedle8080';

/** A directory named by a token (a release path, a checkout with credentials in its name). */
const PATH_TOKEN = SECRET_SHAPES.find((s) => s.name === 'GitHub ghp_')!.secret;
/** A key written in the source of the file that throws: Sentry and posthog-node read the lines around a frame. */
const SOURCE_KEY = SECRET_SHAPES.find((s) => s.name === 'Stripe sk_live_')!;

/** One error object, frozen (Sentry cannot mark it as captured), thrown by every request: Sentry's Dedupe drops the repeats. */
const FROZEN = Object.freeze(new Error('one frozen error object, thrown by every request'));

/** Sentry wraps `ClientRequest.prototype._storeHeader` once per process (Node 20): an earlier test file's copy would see this file's requests. */
type StoreHeader = ((...args: unknown[]) => unknown) & { __sentry_original__?: StoreHeader };
const clientRequestProto = ClientRequest.prototype as unknown as { _storeHeader: StoreHeader };
const storeHeaderAsFound = clientRequestProto._storeHeader;

let outbound: { server: Server; url: string };
let sourceDir: string;
let throwers: { fromTokenPath: (probe: string) => never; fromKeyedSource: (probe: string) => never };

@Controller('scrub')
class ScrubController {
  constructor(@Inject(POSTHOG_CLIENT) private readonly posthog: PostHog) {}

  @Get('batch/:position/:batch')
  async run(@Param('position') position: Position, @Param('batch') batchParam: string) {
    const batch = Number(batchParam);
    const text = batchText(batch);
    const probe = marker(position, batch);
    const capture = (event: string, properties: Record<string, unknown>) =>
      this.posthog.capture({ distinctId: 'user_scrub', event, properties });
    switch (position) {
      case 'console-breadcrumb':
        console.warn(`${probe} ${text}`, { detail: text, payload: Buffer.from(text) });
        throw new Error(`failed after logging (batch ${batch})`);
      case 'http-breadcrumb':
        await fetch(`${outbound.url}/fetched/${probe}?page=${QUERY_NEEDLE}&note=${encodeURIComponent(text)}`);
        await new Promise<void>((done, fail) =>
          httpGet(`${outbound.url}/requested/${probe}?page=${QUERY_NEEDLE}&note=${encodeURIComponent(text)}`, (res) =>
            res.resume().on('end', done),
          ).on('error', fail),
        );
        throw new Error(`failed after the calls (batch ${batch})`);
      case 'thrown-object':
        throw { probe, message: text, password: text, detail: { note: text, lines: [text] }, blob: Buffer.from(text) };
      case 'app-sentry-capture':
        Sentry.captureException(new Error(`${probe} the app's own capture: ${text}`));
        return { ok: true };
      case 'client-capture-property':
        capture('client_probe', { probe, detail: text });
        return { ok: true };
      case 'client-capture-nested':
        capture('client_probe', { probe, detail: { upstream: { response: { body: text } } } });
        return { ok: true };
      case 'client-capture-array':
        capture('client_probe', { probe, lines: ['first', ...BATCHES[batch]!.map((s) => s.text)], deep: [[{ items: [text] }]] });
        return { ok: true };
      case 'client-capture-key-name':
        capture('client_probe', { probe, ...Object.fromEntries(BATCHES[batch]!.map((s) => [`${probe} ${s.text}`, 1])) });
        return { ok: true };
      case 'client-capture-event-name':
        for (const s of BATCHES[batch]!) capture(`${probe} ${s.text}`, { probe });
        return { ok: true };
      case 'client-capture-buffer':
        capture('client_probe', {
          probe,
          payload: Buffer.from(text),
          bytes: new Uint8Array(Buffer.from(text)),
          nested: { chunk: Buffer.from(text) },
        });
        return { ok: true };
    }
  }

  @Get('reset/:token')
  reset() {
    throw new Error('password reset failed');
  }

  @Get('frames/token-path/:probe')
  tokenPath(@Param('probe') probe: string) {
    throwers.fromTokenPath(probe);
  }

  @Get('frames/keyed-source/:probe')
  keyedSource(@Param('probe') probe: string) {
    throwers.fromKeyedSource(probe);
  }

  @Get('frozen')
  frozen() {
    throw FROZEN;
  }

  @Get('same-string')
  sameString() {
    throw 'the same string, thrown by every request';
  }
}

/** The pieces of a secret that must not be found: whole, each line of a multi-line one, JSON-escaped and URL-encoded. */
function needles(secret: string): string[] {
  const parts = [secret, ...secret.split(/\n|\\n/).filter((line) => line.length >= 12)];
  return [...new Set(parts.flatMap((p) => [p, JSON.stringify(p).slice(1, -1), encodeURIComponent(p)]))];
}

/** Bytes sent as numbers show a secret too: its first 12 bytes as a JSON array, or as an object of indices. */
const asBytes = (secret: string) => {
  const bytes = [...Buffer.from(secret).subarray(0, 12)];
  return [bytes.join(','), bytes.map((b, i) => `"${i}":${b}`).join(',')];
};

const consoleWarn = console.warn;
let capture: CaptureServer;
let sentry: SentryServer;
let app: INestApplication;
let http: ReturnType<typeof request>;
const statuses: [string, number][] = [];

beforeAll(async () => {
  capture = await new CaptureServer().start();
  sentry = await new SentryServer().start();
  const server = createServer((req, res) => {
    res.setHeader('Connection', 'close');
    res.end('ok');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  outbound = { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };

  sourceDir = mkdtempSync(join(tmpdir(), 'sdk-scrub-'));
  const keyedFile = join(sourceDir, 'keyed-source.js');
  // The key sits on the line above the throw: inside the source lines both SDKs send around a frame.
  writeFileSync(
    keyedFile,
    [
      '(function () {',
      `  const stripeKey = '${SOURCE_KEY.secret}';`,
      '  return function fromKeyedSource(probe) { throw new Error(probe + " thrown next to a key " + stripeKey.length); };',
      '})',
    ].join('\n'),
  );
  const tokenFile = `/srv/releases/${PATH_TOKEN}/handler.js`;
  throwers = {
    fromTokenPath: new Script(
      '(function () { return function fromTokenPath(probe) { throw new Error(probe + " thrown from a release path"); }; })',
      { filename: tokenFile },
    ).runInThisContext()(),
    fromKeyedSource: new Script(readFileSync(keyedFile, 'utf8'), { filename: keyedFile }).runInThisContext()(),
  };

  let original = clientRequestProto._storeHeader;
  while (original.__sentry_original__) original = original.__sentry_original__;
  clientRequestProto._storeHeader = original;
  // The console breadcrumbs' probes print nothing: Sentry wraps this silent `warn` when the module initialises it.
  console.warn = () => undefined;
  app = await createTestApp('express', sendingTo(capture.url, { sentry: sentryFor(sentry) }), { controllers: [ScrubController] });
  http = request(app.getHttpServer());
}, 60_000);

afterAll(async () => {
  await app?.close();
  await Sentry.close(2000);
  console.warn = consoleWarn;
  clientRequestProto._storeHeader = storeHeaderAsFound;
  await capture?.stop();
  await sentry?.stop();
  outbound?.server.closeAllConnections();
  await new Promise<void>((done) => (outbound ? outbound.server.close(() => done()) : done()));
  if (sourceDir) rmSync(sourceDir, { recursive: true, force: true });
});

/** Until nothing more arrives on either wire for half a second. */
async function settle(): Promise<void> {
  await app.get(TelemetryService).flush();
  await app.get<PostHog>(POSTHOG_CLIENT).flush();
  await Sentry.flush(5000);
  let seen = -1;
  for (let i = 0; i < 60 && seen !== capture.bodies.length + sentry.raw.length; i++) {
    seen = capture.bodies.length + sentry.raw.length;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe('sdk-scrub: every shape where the SDKs pick up text, on both wires', () => {
  beforeAll(async () => {
    for (const position of POSITIONS) {
      for (let b = 0; b < BATCHES.length; b++) {
        const response = await http.get(`/scrub/batch/${position}/${b}`);
        statuses.push([`${position}/${b}`, response.status]);
      }
    }
    await settle();
  }, 120_000);

  it('answers as the app does (errors 500, the rest 200)', () => {
    const wrong = statuses.filter(
      ([route, status]) => status !== (/^(console-breadcrumb|http-breadcrumb|thrown-object)\//.test(route) ? 500 : 200),
    );
    expect(wrong).toEqual([]);
  });

  it('sends every position (the probes arrive), and none of the secrets, their bytes or the query strings', () => {
    const posthogWire = JSON.stringify(capture.events);
    const sentryWire = sentry.raw.join('\n');
    const missingProbes: string[] = [];
    const leaks: string[] = [];
    let caught = 0;
    for (const position of POSITIONS) {
      for (let b = 0; b < BATCHES.length; b++) {
        const probe = marker(position, b);
        const wire = position.startsWith('client-') ? posthogWire : sentryWire;
        if (!wire.includes(probe)) missingProbes.push(probe);
      }
    }
    const eventsOf = (position: Position): string[] => {
      const probes = BATCHES.map((_, b) => marker(position, b));
      const posthog = capture.events.map((e) => JSON.stringify(e)).filter((text) => probes.some((p) => text.includes(p)));
      return [...posthog, ...sentry.raw.filter((text) => probes.some((p) => text.includes(p)))];
    };
    for (const shape of SECRET_SHAPES) {
      const found = needles(shape.secret).filter((n) => posthogWire.includes(n) || sentryWire.includes(n));
      for (const bytes of asBytes(shape.secret)) if (posthogWire.includes(bytes) || sentryWire.includes(bytes)) found.push(bytes);
      const leakedIn =
        found.length === 0 ? [] : POSITIONS.filter((position) => eventsOf(position).some((text) => found.some((n) => text.includes(n))));
      caught += POSITIONS.length - (found.length > 0 ? Math.max(1, leakedIn.length) : 0);
      if (found.length > 0) leaks.push(`${shape.name} (${leakedIn.join(', ') || 'somewhere'}): ${found[0]!.slice(0, 60)}`);
    }
    if (posthogWire.includes(QUERY_NEEDLE) || sentryWire.includes(QUERY_NEEDLE)) leaks.push(`query string (${QUERY_NEEDLE})`);

    // Bytes are a short marker, on both wires.
    const markers = ['[Buffer ', '[Uint8Array '].filter((m) => !posthogWire.includes(m));
    if (!sentryWire.includes('[Buffer ')) markers.push('[Buffer  (Sentry)');

    const cells = SECRET_SHAPES.length * POSITIONS.length;
    report.add({
      fault: `sdk-scrub: ${SECRET_SHAPES.length} shapes × ${POSITIONS.length} SDK positions (breadcrumbs, thrown objects, the app's own captures)`,
      requestsSent: statuses.length,
      answeredWrongly: 0,
      note: `${caught} of ${cells} secret cells caught (${POSITIONS.join(', ')}); ${capture.events.length} PostHog events and ${sentry.raw.length} Sentry envelopes searched`,
    });
    expect(missingProbes).toEqual([]);
    expect(leaks).toEqual([]);
    expect(markers).toEqual([]);
  });

  it("drops breadcrumbs' query strings and keeps their paths", () => {
    const events = sentry.events.filter((e) => (e.exception?.values?.[0]?.value ?? '').startsWith('failed after the calls'));
    expect(events).toHaveLength(BATCHES.length);
    for (const event of events) {
      const crumbs = (event.breadcrumbs as { category?: string; data?: Record<string, unknown> }[]).filter((c) => c.category === 'http');
      const urls = crumbs.map((c) => String(c.data?.url));
      expect(urls.filter((url) => url.startsWith(`${outbound.url}/fetched/`) || url.startsWith(`${outbound.url}/requested/`))).toHaveLength(
        2,
      );
      for (const crumb of crumbs) {
        expect(crumb.data).not.toHaveProperty(['url.query']);
        expect(String(crumb.data?.url)).not.toContain('?');
      }
    }
  });
});

describe('sdk-scrub: the request in a Sentry event', () => {
  it("names the route, never the raw path, query, cookies or the app's own headers (the module's event and the app's own capture)", async () => {
    const id = 'scrub-raw-path';
    await http
      .get(`/scrub/reset/${PATH_NEEDLE}?page=${QUERY_NEEDLE}`)
      .set({ 'X-Request-ID': id, Cookie: `sid=${COOKIE_NEEDLE}`, 'X-Custom-Token': HEADER_NEEDLE, Authorization: `Basic ${HEADER_NEEDLE}` })
      .expect(500);
    await sentry.waitForRequests(id);
    await Sentry.flush(5000);
    const [event] = sentry.eventsFor(id);
    expect(event).toBeDefined();
    const request = event!.request as { url?: string; headers?: Record<string, string> };
    expect(request.url).toBe(`http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}/scrub/reset/:token`);
    expect(event!.transaction).toBe('GET /scrub/reset/:token');
    for (const key of ['cookies', 'query_string', 'data', 'env']) expect(request).not.toHaveProperty(key);
    const text = JSON.stringify(event);
    for (const needle of [PATH_NEEDLE, QUERY_NEEDLE, COOKIE_NEEDLE, HEADER_NEEDLE]) expect(text).not.toContain(needle);
    // The app's own captures in a request go through the same scrub (the Sentry the module made).
    const own = sentry.events.filter((e) => (e.exception?.values?.[0]?.value ?? '').includes("the app's own capture"));
    expect(own.length).toBeGreaterThan(0);
    for (const e of own) expect(String((e.request as { url?: string } | undefined)?.url)).toMatch(/\/scrub\/batch\/:position\/:batch$/);
  });
});

describe('sdk-scrub: stack frames', () => {
  it('redacts a token in a path and a key in the source lines, on both wires, and sends no local variables', async () => {
    await http.get('/scrub/frames/token-path/frame_probe_path').set('X-Request-ID', 'scrub-frame-path').expect(500);
    await http.get('/scrub/frames/keyed-source/frame_probe_source').set('X-Request-ID', 'scrub-frame-source').expect(500);
    await sentry.waitForRequests('scrub-frame-path', 'scrub-frame-source');
    await capture.waitFor(() =>
      ['scrub-frame-path', 'scrub-frame-source'].every((id) => capture.forRequest(id).some((e) => e.event === '$exception')),
    );
    const framesOf = (exceptions: { stacktrace?: { frames?: Record<string, unknown>[] } }[] | undefined) =>
      (exceptions ?? []).flatMap((e) => e.stacktrace?.frames ?? []);
    const sentryFrames = (id: string) => framesOf(sentry.eventsFor(id)[0]?.exception?.values as never);
    const posthogFrames = (id: string) =>
      framesOf(capture.forRequest(id).find((e: CapturedEvent) => e.event === '$exception')?.properties.$exception_list);

    for (const frames of [sentryFrames('scrub-frame-path'), posthogFrames('scrub-frame-path')]) {
      // posthog-node sends paths relative to the working directory.
      const releaseFrames = frames.filter((f) => String(f.filename ?? '').includes('srv/releases/'));
      expect(releaseFrames.length).toBeGreaterThan(0);
      expect(JSON.stringify(frames)).not.toContain(PATH_TOKEN);
    }
    for (const [wire, frames] of [
      ['sentry', sentryFrames('scrub-frame-source')],
      ['posthog', posthogFrames('scrub-frame-source')],
    ] as const) {
      const thrower = frames.find((f) => String(f.filename ?? '').endsWith('keyed-source.js'));
      expect(thrower).toBeDefined();
      // Source lines are kept for reading the error, redacted. Sentry's ContextLines caches ten files per event and
      // reads the newest frame's file first, so in a stack through more files it may send the thrower without any.
      if (wire === 'posthog' || thrower?.context_line !== undefined) expect(JSON.stringify(thrower)).toContain('stripeKey');
      expect(JSON.stringify(frames)).not.toContain(SOURCE_KEY.secret);
      for (const frame of frames) expect(frame).not.toHaveProperty('vars');
    }
  });
});

describe('sdk-scrub: sentry_event_id names an event Sentry sent', () => {
  it('links one of three requests throwing the same frozen error, or the same string, to the one event Dedupe let through', async () => {
    const rows: string[] = [];
    const sentIds = () => new Set(sentry.events.map((e) => e.event_id));
    for (const route of ['frozen', 'same-string']) {
      const ids = [1, 2, 3].map((n) => `scrub-${route}-${n}`);
      for (const id of ids) await http.get(`/scrub/${route}`).set('X-Request-ID', id).expect(500);
      await capture.waitFor(() => ids.every((id) => capture.forRequest(id).some((e) => e.event === 'api_error')));
      await sentry.waitForRequests(ids[0]!);
      await Sentry.flush(5000);
      const sent: SentryEnvelopeEvent[] = ids.flatMap((id) => sentry.eventsFor(id));
      const links = ids.map(
        (id) => capture.forRequest(id).find((e) => e.event === 'api_error')?.properties.sentry_event_id as string | undefined,
      );
      rows.push(`${route}: ${sent.length} sent, ${links.filter(Boolean).length} linked`);
      expect(sent).toHaveLength(1);
      expect(links.filter((link) => link !== undefined)).toEqual([sent[0]!.event_id]);
    }
    for (const error of capture.eventsNamed('api_error')) {
      const link = error.properties.sentry_event_id;
      if (link !== undefined) expect(sentIds().has(link)).toBe(true);
    }
    report.add({
      fault: 'sdk-scrub: sentry_event_id when Sentry drops repeats (Dedupe)',
      requestsSent: 6,
      answeredWrongly: 0,
      note: rows.join('; '),
    });
  });
});

/** A process that rejects a promise nobody handles, with or without the module (its Sentry made from a DSN). */
async function runRejection(withModule: boolean, nodeArgs: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const script = [
    "import 'reflect-metadata';",
    "import { NestFactory } from '@nestjs/core';",
    "import { TelemetryModule } from 'nestjs-posthog-telemetry';",
    'const app = process.env.WITH_MODULE',
    '  ? await NestFactory.createApplicationContext(TelemetryModule.forRoot({ apiKey: "phc_x", host: process.env.CAPTURE_URL, sentry: { dsn: process.env.SENTRY_DSN } }), { logger: false })',
    '  : undefined;',
    "setTimeout(() => Promise.reject(new Error('background failure password=rejectionPASS4242')), 20);",
    // Still running afterwards: closes, so the process can end on its own.
    "setTimeout(() => { console.log('ALIVE'); void app?.close(); }, 300);",
  ].join('\n');
  const child = spawn(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], {
    env: { ...process.env, CAPTURE_URL: capture.url, SENTRY_DSN: sentry.dsn, ...(withModule ? { WITH_MODULE: '1' } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const code = await new Promise<number | null>((done) => child.once('exit', (exitCode) => done(exitCode)));
  return { code, stderr, stdout };
}

describe("sdk-scrub: an unhandled rejection, with the module's Sentry", () => {
  it("crashes the process as Node does (code 1), reaches Sentry scrubbed, and keeps Node's other modes", async () => {
    const rows: string[] = [];
    for (const args of [[], ['--unhandled-rejections=warn']]) {
      const without = await runRejection(false, args);
      const withModule = await runRejection(true, args);
      rows.push(`${args[0] ?? 'default (throw)'}: exit ${without.code} without the module, ${withModule.code} with it`);
      expect(withModule.code).toBe(without.code);
      // Kept alive by Node's mode: it goes on running, as without the module.
      if (without.code === 0) expect(withModule.stdout).toContain('ALIVE');
      expect(withModule.stderr).toContain('background failure');
    }
    expect(rows[0]).toContain('exit 1 without the module, 1 with it');
    expect(rows[1]).toContain('exit 0 without the module, 0 with it');
    await Sentry.flush(2000);
    const deadline = Date.now() + 10_000;
    while (!sentry.raw.some((text) => text.includes('background failure')) && Date.now() < deadline)
      await new Promise((done) => setTimeout(done, 50));
    const rejection = sentry.raw.filter((text) => text.includes('background failure'));
    expect(rejection.length).toBeGreaterThan(0);
    for (const text of rejection) expect(text).not.toContain('rejectionPASS4242');
    report.add({ fault: "sdk-scrub: unhandled rejection, module's Sentry", requestsSent: 0, answeredWrongly: 0, note: rows.join('; ') });
  }, 60_000);
});

// The README's first command, for real: `npm start`'s launcher (built) starts the
// explorer and the demo; headless Chromium loads the demo page, whose real
// posthog-js sends to the explorer; the click's journey is then found in the
// explorer's own page. Needs `npm run build` first (`npm test` does it) and
// Debian's chromium (`scripts/ensure-chromium.sh`).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { freePort } from '../support/recording-logger.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOTS = resolve(ROOT, process.env.SCREENSHOT_DIR ?? '.tmp/screenshots');
/** A desktop Chrome's user agent: posthog-js drops events from user agents that look like bots (HeadlessChrome). */
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';

interface JourneyEvent {
  event: string;
  distinct_id: string;
  source: 'frontend' | 'backend';
  timestamp: string;
  properties: Record<string, any>;
}

/** Runs a built script to its end (or, with `stopOn`, until its output says that) and collects its output. */
function runScript(script: string, env: NodeJS.ProcessEnv, stopOn?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [script], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (stopOn !== undefined && stdout.includes(stopOn)) child.kill('SIGTERM');
    });
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

async function waitUntil<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read().catch(() => undefined as T);
    if (last !== undefined && done(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 500)}`);
}

describe('npm start: the demo page, the explorer, and one journey across both', () => {
  let launcher: ChildProcess;
  let output = '';
  let dataDir: string;
  let explorerUrl: string;
  let demoUrl: string;
  let browser: Browser;
  let context: BrowserContext;
  const consoleProblems: string[] = [];

  const json = async (path: string): Promise<any> => {
    const response = await fetch(`${explorerUrl}${path}`);
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.json();
  };
  const journey = async (query: string): Promise<JourneyEvent[]> => (await json(`/api/journey?${query}`)).events;

  async function openPage(url: string): Promise<Page> {
    const page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() !== 'error' && message.type() !== 'warning') return;
      // Chromium logs every 4xx/5xx answer; the demo's "Trouble" buttons ask for them on purpose.
      if (url.startsWith(demoUrl) && /^Failed to load resource: the server responded with a status of [45]\d\d/.test(message.text())) return;
      consoleProblems.push(`${url}: ${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => consoleProblems.push(`${url}: ${error.message}`));
    page.on('requestfailed', (r) => consoleProblems.push(`${url}: request failed ${r.url()} ${r.failure()?.errorText}`));
    await page.goto(url);
    return page;
  }

  beforeAll(async () => {
    for (const file of ['dist/scripts/start.js', 'dist/apps/explorer/src/main.js', 'dist/apps/demo/src/main.js']) {
      if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing: run npm run build first (npm test does).`);
    }
    if (!existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: run scripts/ensure-chromium.sh (apt-get install chromium) or set CHROMIUM_PATH.`);
    mkdirSync(SCREENSHOTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), 'explorer-system-'));
    const [explorerPort, demoPort] = [await freePort(), await freePort()];
    launcher = spawn(process.execPath, ['dist/scripts/start.js'], {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: 'development', EXPLORER_PORT: String(explorerPort), PORT: String(demoPort), EXPLORER_DB: join(dataDir, 'events.duckdb') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    launcher.stdout!.on('data', (chunk) => (output += chunk));
    launcher.stderr!.on('data', (chunk) => (output += chunk));
    await waitUntil('the launcher to print its URLs', async () => output, (text) => /Journey explorer:\s+http/.test(text), 60_000);
    explorerUrl = /Journey explorer:\s+(http:\/\/\S+?)\/?\s/.exec(output)![1];
    demoUrl = /Demo page \(click around\):\s+(http:\/\/\S+?)\/?\s/.exec(output)![1];
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        // Leaves navigator.webdriver false, which posthog-js would also take for a bot.
        '--disable-blink-features=AutomationControlled',
      ],
    });
    context = await browser.newContext({ userAgent: USER_AGENT, viewport: { width: 1360, height: 900 } });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (launcher && launcher.exitCode === null) {
      const exited = new Promise((done) => launcher.once('exit', done));
      launcher.kill('SIGTERM');
      await exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the page and explorer URLs, and fills the explorer with journeys from the demo within a minute', async () => {
    expect(explorerUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(demoUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const summary = await waitUntil(
      'demo traffic in the explorer',
      () => json('/api/summary'),
      (s: any) => s.requests >= 30 && s.frontend_events >= 30 && s.errors >= 5,
      60_000,
    );
    // The workload's slow call (over the demo's 1 s threshold) is among its last.
    const performance = await waitUntil(
      'a slow_request',
      () => json('/api/performance'),
      (p: any) => p.endpoints.some((r: any) => r.endpoint === '/slow' && r.slow_requests > 0),
      30_000,
    );
    expect(performance.endpoints.find((r: any) => r.endpoint === '/slow').p50_ms).toBeGreaterThan(1000);
    expect(summary.demo_traffic).toBe(true);
    // One person's journey holds both halves: their browser's events and the API's.
    const [latest] = (await json('/api/requests?limit=1')).requests;
    const events = await journey(`distinct_id=${encodeURIComponent(latest.distinct_id)}`);
    expect(new Set(events.map((e) => e.source))).toEqual(new Set(['frontend', 'backend']));
    const errors = await json('/api/errors');
    expect(errors.by_type.map((r: any) => r.error_type)).toEqual(
      expect.arrayContaining(['quota_error', 'content_filter', 'connection_error', 'application_error', 'client_error']),
    );
  });

  it("a click on the demo page and its API call land in one journey, found in the explorer's page", async () => {
    const page = await openPage(`${demoUrl}/`);
    await page.waitForSelector('body[data-ready=true]');
    expect(await page.textContent('#status')).toContain(`posthog-js sends to ${explorerUrl}`);

    await page.click('button[data-button="Sign up"]');
    await page.waitForSelector('#calls li');
    const userId = await page.evaluate(() => (globalThis as any).posthog.get_distinct_id());
    expect(userId).toMatch(/^user_/);
    const sessionId = await page.evaluate(() => (globalThis as any).posthog.get_session_id());
    await page.click('button[data-button="Send message"]');
    await page.waitForSelector('#calls li:nth-child(2)');
    const requestId = await page.getAttribute('#calls li:first-child', 'data-request-id');
    expect(await page.textContent('#calls li:first-child')).toContain('Send message → 201');
    await page.click('button[data-button="Quota error"]');
    await page.waitForSelector('#calls li:nth-child(3)');

    // posthog-js batches every few seconds; the module sends every second.
    const events = await waitUntil(
      `the journey of ${requestId}`,
      () => journey(`request_id=${requestId}`),
      (e) => ['button_click', 'chat_message_sent'].every((n) => e.some((x) => x.source === 'frontend' && x.event === n)) && e.some((x) => x.event === 'api_request'),
      30_000,
    );
    const byName = (source: string, name: string) => events.find((e) => e.source === source && e.event === name)!;
    expect(byName('frontend', 'button_click').properties).toMatchObject({ button_name: 'Send message', $lib: 'web' });
    expect(byName('backend', 'api_request').properties).toMatchObject({ endpoint: '/chat', method: 'POST', status_code: 201 });
    expect(byName('backend', 'chat_message_sent')).toBeDefined();
    // One person, one session: posthog-js's tracing headers carried them to the API.
    for (const event of events) {
      expect(event.distinct_id).toBe(userId);
      expect(event.properties.$session_id).toBe(sessionId);
      expect(event.properties.request_id).toBe(requestId);
    }
    // In time order: the click before anything the API did, the API's work before the page saw the answer.
    // (`api_request` is stamped when the response ends, so it may land just after the page's outcome event.)
    const times = events.map((e) => Date.parse(e.timestamp));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(events[0]).toMatchObject({ source: 'frontend', event: 'button_click' });
    for (const backend of events.filter((e) => e.source === 'backend')) expect(Date.parse(backend.timestamp)).toBeGreaterThan(times[0]);
    expect(Date.parse(byName('frontend', 'chat_message_sent').timestamp)).toBeGreaterThanOrEqual(Date.parse(byName('backend', 'chat_message_sent').timestamp));
    await page.screenshot({ path: join(SCREENSHOTS, 'demo-page.png') });

    // The explorer's page shows the same journey, frontend and backend together.
    const explorer = await openPage(`${explorerUrl}/#journey?request_id=${requestId}`);
    await explorer.waitForSelector('body[data-loaded=journey]');
    await explorer.waitForSelector('#timeline li[data-source=frontend][data-event=button_click]');
    await explorer.waitForSelector('#timeline li[data-source=backend][data-event=api_request]');
    expect(await explorer.textContent('#journey-summary')).toMatch(/\d+ events: \d+ from the frontend, \d+ from the backend/);
    await explorer.screenshot({ path: join(SCREENSHOTS, 'journey.png'), fullPage: true });

    // From the Requests table, the request id is a link to the same journey.
    await explorer.goto(`${explorerUrl}/#requests?user=${encodeURIComponent(userId)}`);
    await explorer.waitForSelector(`#requests-table a[data-kind=request_id][title="${requestId}"]`);
    await explorer.screenshot({ path: join(SCREENSHOTS, 'requests.png') });
    await explorer.click(`#requests-table a[data-kind=request_id][title="${requestId}"]`);
    await explorer.waitForFunction((id) => (globalThis as any).location.hash === `#journey?request_id=${id}`, requestId);
    await explorer.waitForSelector('#timeline li[data-source=frontend][data-event=chat_message_sent]');

    // The user's quota error is on the Errors page, with a chart drawn by Chart.js.
    await explorer.goto(`${explorerUrl}/#errors?user=${encodeURIComponent(userId)}`);
    await explorer.waitForSelector('#errors-by-type tr[data-error-type=quota_error]');
    expect(await explorer.evaluate(() => typeof (globalThis as any).Chart)).toBe('function');
    expect(await explorer.textContent('#latest-error')).toContain('quota');
    await explorer.goto(`${explorerUrl}/#errors`);
    await explorer.waitForSelector('#errors-by-type tr[data-error-type=content_filter]');
    await explorer.screenshot({ path: join(SCREENSHOTS, 'errors.png'), fullPage: true });

    // The person's whole journey: sign-up, chat and the error, frontend and backend interleaved.
    await explorer.goto(`${explorerUrl}/#journey?distinct_id=${encodeURIComponent(userId)}`);
    await explorer.waitForSelector('#timeline li.is-error[data-event=api_error]');
    await explorer.waitForSelector('#timeline li[data-source=frontend][data-event=api_call_failed]');
    // Including the sign-up, made while the browser was still anonymous: $identify linked it.
    await explorer.waitForSelector('#timeline li[data-source=frontend][data-event=signup_started]');
    expect(await explorer.textContent('#timeline')).toMatch(/POST \/auth\/signup\s+→ 201/);
    await explorer.screenshot({ path: join(SCREENSHOTS, 'user-journey.png'), fullPage: true });

    await explorer.goto(`${explorerUrl}/#performance`);
    await explorer.waitForSelector('#performance-table tr[data-endpoint="/chat"]');
    await explorer.screenshot({ path: join(SCREENSHOTS, 'performance.png'), fullPage: true });

    // The explorer's "Generate traffic" button runs the demo's workload.
    const before = (await json('/api/summary')).requests;
    await explorer.click('#traffic:not([hidden])');
    await waitUntil('traffic from the button', () => json('/api/summary'), (s) => s.requests >= before + 30, 30_000);

    // Nothing the pages or posthog-js did failed or complained in the console.
    expect(consoleProblems).toEqual([]);
  });

  it('npm run demo:traffic adds a mixed workload to the running demo and explorer', async () => {
    const before = await json('/api/summary');
    const result = await runScript('dist/scripts/demo-traffic.js', { DEMO_URL: demoUrl, POSTHOG_HOST: explorerUrl, DEMO_USERS: '3' });
    expect(result.code).toBe(0);
    expect(result.stdout + result.stderr).toMatch(/Demo traffic: \d+ API calls by 3 people, \d+ frontend events\./);
    const after = await waitUntil('the new traffic', () => json('/api/summary'), (s) => s.requests >= before.requests + 15, 30_000);
    expect(after.frontend_events).toBeGreaterThan(before.frontend_events);
  });

  it('the explorer refuses to start under NODE_ENV=production unless told', async () => {
    // Started, it is stopped as soon as it says so.
    const run = (env: NodeJS.ProcessEnv) =>
      runScript('dist/apps/explorer/src/main.js', { EXPLORER_DB: ':memory:', EXPLORER_PORT: '0', ...env }, 'Journey explorer on');
    const refused = await run({ NODE_ENV: 'production' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('EXPLORER_ALLOW_PRODUCTION=true');
    const allowed = await run({ NODE_ENV: 'production', EXPLORER_ALLOW_PRODUCTION: 'true' });
    expect(allowed.stderr).toBe('');
  });
});

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

// Browser globals inside page.evaluate callbacks (the tests compile without the DOM library).
declare const document: any, location: any, window: any, getComputedStyle: any;

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
function runScript(
  script: string,
  env: NodeJS.ProcessEnv,
  stopOn?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
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
      if (url.startsWith(demoUrl) && /^Failed to load resource: the server responded with a status of [45]\d\d/.test(message.text()))
        return;
      consoleProblems.push(`${url}: ${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => consoleProblems.push(`${url}: ${error.message}`));
    page.on('requestfailed', (r) => {
      // The explorer's live stream is cut when the page navigates or closes.
      if (r.url().endsWith('/api/live') && r.failure()?.errorText === 'net::ERR_ABORTED') return;
      consoleProblems.push(`${url}: request failed ${r.url()} ${r.failure()?.errorText}`);
    });
    await page.goto(url);
    return page;
  }

  beforeAll(async () => {
    for (const file of ['dist/scripts/start.js', 'dist/apps/explorer/src/main.js', 'dist/apps/demo/src/main.js']) {
      if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing: run npm run build first (npm test does).`);
    }
    if (!existsSync(CHROMIUM))
      throw new Error(`No Chromium at ${CHROMIUM}: run scripts/ensure-chromium.sh (apt-get install chromium) or set CHROMIUM_PATH.`);
    mkdirSync(SCREENSHOTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), 'explorer-system-'));
    const [explorerPort, demoPort] = [await freePort(), await freePort()];
    launcher = spawn(process.execPath, ['dist/scripts/start.js'], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_ENV: 'development',
        EXPLORER_PORT: String(explorerPort),
        PORT: String(demoPort),
        EXPLORER_DB: join(dataDir, 'events.duckdb'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    launcher.stdout!.on('data', (chunk) => (output += chunk));
    launcher.stderr!.on('data', (chunk) => (output += chunk));
    await waitUntil(
      'the launcher to print its URLs',
      async () => output,
      (text) => /Journey explorer:\s+http/.test(text),
      60_000,
    );
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
    // The demo's errors are thrown on purpose: one short line each, no stacks.
    expect(output).toContain('thrown on purpose');
    expect(output).not.toContain('[ExceptionsHandler]');
    expect(output).not.toMatch(/\n\s+at DemoController\./);
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
      (e) =>
        ['button_click', 'chat_message_sent'].every((n) => e.some((x) => x.source === 'frontend' && x.event === n)) &&
        e.some((x) => x.event === 'api_request'),
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
    expect(Date.parse(byName('frontend', 'chat_message_sent').timestamp)).toBeGreaterThanOrEqual(
      Date.parse(byName('backend', 'chat_message_sent').timestamp),
    );
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

    // The user's quota error is an issue on the Issues page (old #errors links land there).
    await explorer.goto(`${explorerUrl}/#errors?user=${encodeURIComponent(userId)}`);
    await explorer.waitForSelector('#issues-server tr[data-issue]');
    expect(await explorer.textContent('#issues-server')).toContain('You exceeded your current quota');

    // The person's whole journey: sign-up, chat and the error, frontend and backend interleaved.
    await explorer.goto(`${explorerUrl}/#journey?distinct_id=${encodeURIComponent(userId)}`);
    await explorer.waitForSelector('#timeline li.group.has-error .bar .marker[data-event=api_error]');
    await explorer.waitForSelector('#timeline li[data-source=frontend][data-event=api_call_failed]');
    // Including the sign-up, made while the browser was still anonymous: $identify linked it.
    await explorer.waitForSelector('#timeline li[data-source=frontend][data-event=signup_started]');
    expect(await explorer.textContent('#timeline')).toMatch(/POST \/auth\/signup\s*201/);
    await explorer.screenshot({ path: join(SCREENSHOTS, 'user-journey.png'), fullPage: true });

    await explorer.goto(`${explorerUrl}/#performance`);
    await explorer.waitForSelector('#performance-table tr[data-endpoint="/chat"]');
    expect(await explorer.evaluate(() => typeof (globalThis as any).Chart)).toBe('function');
    await explorer.screenshot({ path: join(SCREENSHOTS, 'performance.png'), fullPage: true });

    // The explorer's "Generate traffic" button runs the demo's workload.
    const before = (await json('/api/summary')).requests;
    await explorer.click('#traffic:not([hidden])');
    await waitUntil(
      'traffic from the button',
      () => json('/api/summary'),
      (s) => s.requests >= before + 30,
      30_000,
    );

    // Nothing the pages or posthog-js did failed or complained in the console.
    expect(consoleProblems).toEqual([]);
  });

  it('a click is one group of the waterfall: the click, the call as a bar with its error marker, the outcome; live, without a reload', async () => {
    const page = await openPage(`${demoUrl}/`);
    await page.waitForSelector('body[data-ready=true]');
    await page.click('button[data-button="Quota error"]');
    await page.waitForSelector('#calls li');
    const requestId = (await page.getAttribute('#calls li:first-child', 'data-request-id'))!;
    // Opened at once, before posthog-js and the module delivered anything: the page fills itself.
    const explorer = await openPage(`${explorerUrl}/#journey?request_id=${requestId}`);
    await explorer.waitForSelector('body[data-loaded=journey]');
    await explorer.evaluate(() => ((globalThis as any).__notReloaded = true));
    const group = `#timeline li.group[data-request-id="${requestId}"]`;
    await explorer.waitForSelector(`${group} li.event-row[data-source=frontend][data-event=button_click]`, { timeout: 30_000 });
    await explorer.waitForSelector(`${group} li.event-row.call[data-source=backend][data-event=api_request] .bar.s5`, { timeout: 30_000 });
    await explorer.waitForSelector(`${group} .bar .marker.error[data-event=api_error]`, { timeout: 30_000 });
    await explorer.waitForSelector(`${group} li.event-row[data-source=frontend][data-event=api_call_failed]`, { timeout: 30_000 });
    // The module sends $exception after the answer; it joins the bar when it arrives.
    await explorer.waitForSelector(`${group} .bar .marker[data-event="$exception"]`, { timeout: 30_000 });
    expect(await explorer.evaluate(() => (globalThis as any).__notReloaded)).toBe(true);
    // One group; read in order: the click, the call, the page's outcome (whatever their clocks said).
    expect(await explorer.locator('#timeline li.group').count()).toBe(1);
    const order = await explorer.$$eval(`${group} li.event-row`, (rows) => rows.map((r) => r.getAttribute('data-event')));
    expect(order).toEqual(['button_click', 'api_request', 'api_call_failed']);
    expect(await explorer.textContent(`${group} > header`)).toMatch(/“Quota error”\s*GET \/errors\/quota\s*500/);
    // Every event's properties are one click away.
    await explorer.click(`${group} li.event-row[data-event=api_request] details.props summary`);
    expect(await explorer.textContent(`${group} li.event-row[data-event=api_request] details.props pre`)).toContain('"response_time_ms"');
    await explorer.screenshot({ path: join(SCREENSHOTS, 'waterfall.png') });
    expect(consoleProblems).toEqual([]);
  });

  it("errors are issues: grouped, counted, 5xx and 4xx apart; an issue's page renders its frames and links to each journey", async () => {
    const explorer = await openPage(`${explorerUrl}/#issues`);
    await explorer.waitForSelector('#issues-server tr[data-issue]');
    await explorer.waitForSelector('#issues-client tr[data-issue]');
    expect(await explorer.textContent('#issues-client')).toMatch(/BadRequestException|NotFoundException|ForbiddenException/);
    expect(await explorer.textContent('#issues-server')).not.toMatch(/BadRequestException|NotFoundException/);
    await explorer.screenshot({ path: join(SCREENSHOTS, 'issues.png'), fullPage: true });
    const quota = explorer.locator('#issues-server tr[data-issue]', { hasText: 'You exceeded your current quota' });
    await quota.locator('a.issue-link').click();
    await explorer.waitForSelector('body[data-loaded=issue]');
    await explorer.waitForSelector('#frames li.frame.in-app');
    expect(await explorer.textContent('#frames li.frame.in-app')).toMatch(/quotaError|providerError/);
    // The frame's source lines, the failing one marked.
    await explorer.waitForSelector('#frames li.frame.in-app pre.context span.current');
    expect(await explorer.textContent('#page-issue dl.stats')).toMatch(/Events\s*\d+\s*Users\s*\d+/);
    await explorer.screenshot({ path: join(SCREENSHOTS, 'issue.png'), fullPage: true });
    const link = explorer.locator('#occurrences a[data-kind=request_id]').first();
    const requestId = await link.getAttribute('title');
    await link.click();
    await explorer.waitForSelector(`#timeline li.group[data-request-id="${requestId}"] .bar .marker[data-event=api_error]`);
    expect(consoleProblems).toEqual([]);
  });

  it('live updates never fight the user: typed filter text and a selection survive, an invalid filter says why', async () => {
    const explorer = await openPage(`${explorerUrl}/#requests`);
    await explorer.waitForSelector('#requests-table tbody tr');
    const count = async () => (await explorer.textContent('#requests-count'))!;
    const before = await count();
    const input = explorer.locator('#filters input[name=q]');
    await input.click();
    await input.pressSequentially('ch', { delay: 50 });
    // New events arrive while the user types: the table follows, the input keeps its text and focus.
    await fetch(`${demoUrl}/demo/traffic`, { method: 'POST' }).then((r) => expect(r.status).toBe(202));
    await waitUntil('a live update of the table', count, (text) => text !== before, 30_000);
    expect(await input.inputValue()).toBe('ch');
    expect(await explorer.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('q');
    await input.pressSequentially('at', { delay: 50 });
    await input.press('Enter');
    await explorer.waitForFunction(() => location.hash.includes('q=chat'));
    await waitUntil(
      'the search to apply',
      async () => explorer.$$eval('#requests-table tbody tr td:nth-child(3)', (cells) => cells.map((c) => c.textContent)),
      (cells) => cells.length > 0 && cells.every((c) => c!.includes('/chat')),
      10_000,
    );
    expect(await input.inputValue()).toBe('chat');

    // A selected id stays selected while events arrive (the page waits until the selection is gone).
    const selected = await explorer.evaluate(() => {
      const link = document.querySelector('#requests-table tbody tr:first-child a[data-kind=request_id]')!;
      const range = document.createRange();
      range.selectNodeContents(link);
      document.getSelection()!.removeAllRanges();
      document.getSelection()!.addRange(range);
      return document.getSelection()!.toString();
    });
    expect(selected.length).toBeGreaterThan(5);
    const summary = (await explorer.textContent('#summary'))!;
    await fetch(`${demoUrl}/demo/traffic`, { method: 'POST' }).then((r) => expect(r.status).toBe(202));
    await waitUntil(
      'new events in the explorer',
      () => json('/api/summary'),
      (s: any) => !summary.startsWith(`${s.events} events`),
      30_000,
    );
    await explorer.waitForTimeout(1500);
    expect(await explorer.evaluate(() => document.getSelection()!.toString())).toBe(selected);
    expect(await explorer.textContent('#summary')).toBe(summary);
    // Once the selection is gone, the page catches up.
    await explorer.evaluate(() => document.getSelection()!.removeAllRanges());
    await explorer.waitForFunction((old) => document.querySelector('#summary')!.textContent !== old, summary);

    // A reload already on its way when the text is selected waits too: its answer is held back until the
    // selection is gone. The summary's answer is kept in flight until the text is selected.
    let release!: () => void;
    const inFlight = new Promise<void>((resolve) => (release = resolve));
    await explorer.route('**/api/summary*', async (route) => {
      await inFlight;
      await route.continue();
    });
    const shown = (await explorer.textContent('#summary'))!;
    const asked = explorer.waitForRequest((request) => request.url().includes('/api/summary'));
    await fetch(`${demoUrl}/demo/traffic`, { method: 'POST' }).then((r) => expect(r.status).toBe(202));
    await asked;
    await explorer.evaluate(() => {
      const range = document.createRange();
      range.selectNodeContents(document.querySelector('#requests-table tbody tr:first-child a[data-kind=request_id]')!);
      document.getSelection()!.removeAllRanges();
      document.getSelection()!.addRange(range);
    });
    const answered = explorer.waitForResponse((response) => response.url().includes('/api/summary'));
    release();
    await answered;
    await explorer.waitForTimeout(1000);
    expect(await explorer.textContent('#summary')).toBe(shown);
    await explorer.unroute('**/api/summary*');
    await explorer.evaluate(() => document.getSelection()!.removeAllRanges());
    await explorer.waitForFunction((old) => document.querySelector('#summary')!.textContent !== old, shown);

    // An invalid filter: the API's reason is shown where the user looks, the input keeps what was typed.
    const status = explorer.locator('#filters input[name=status]');
    await status.fill('abc');
    await status.press('Enter');
    await explorer.waitForSelector('#api-error');
    expect(await explorer.textContent('#api-error')).toContain('status must be');
    expect(await status.inputValue()).toBe('abc');
    // Chromium logs that 400 in the console; it was asked for.
    consoleProblems.splice(0, consoleProblems.length, ...consoleProblems.filter((p) => !/status of 400 \(Bad Request\)/.test(p)));
    // A filter matching nothing says so, not "nothing yet".
    await explorer.goto(`${explorerUrl}/#requests?user=nobody-by-this-name`);
    await explorer.waitForSelector('#no-match');
    expect(consoleProblems).toEqual([]);
  });

  it('dark mode from prefers-color-scheme, and every page fits a 390 px phone', async () => {
    const phone = await browser.newContext({
      userAgent: USER_AGENT,
      viewport: { width: 390, height: 844 },
      colorScheme: 'dark',
      deviceScaleFactor: 2,
    });
    try {
      const page = await phone.newPage();
      page.on('pageerror', (error) => consoleProblems.push(`phone: ${error.message}`));
      const [latest] = (await json('/api/requests?limit=1')).requests;
      const issues = await json('/api/issues');
      const pages: [string, string][] = [
        ['requests', '#requests-table tbody tr'],
        [`journey?distinct_id=${encodeURIComponent(latest.distinct_id)}`, '#timeline li.group'],
        ['issues', '#issues-server tr[data-issue]'],
        [`issue/${issues.server[0].id}`, '#occurrences tbody tr'],
        ['performance', '#performance-table tbody tr'],
      ];
      for (const [hash, ready] of pages) {
        await page.goto(`${explorerUrl}/#${hash}`);
        await page.waitForSelector(ready);
        const layout = await page.evaluate(() => ({
          overflow: document.documentElement.scrollWidth - window.innerWidth,
          background: getComputedStyle(document.body).backgroundColor,
        }));
        expect({ hash, ...layout }).toEqual({ hash, overflow: 0, background: 'rgb(11, 15, 23)' });
        if (hash.startsWith('journey')) await page.screenshot({ path: join(SCREENSHOTS, 'phone-dark-journey.png') });
        if (hash === 'issues') await page.screenshot({ path: join(SCREENSHOTS, 'phone-dark-issues.png') });
      }
    } finally {
      await phone.close();
    }
    expect(consoleProblems).toEqual([]);
  });

  it('an explorer with no events shows the two environment variables to set', async () => {
    const port = await freePort();
    const empty = spawn(process.execPath, ['dist/apps/explorer/src/main.js'], {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: 'development', EXPLORER_PORT: String(port), EXPLORER_DB: ':memory:' },
      stdio: 'ignore',
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitUntil(
        'the empty explorer',
        () => fetch(`${base}/api/summary`).then((r) => r.json()),
        (s: any) => s.events === 0,
        30_000,
      );
      const page = await openPage(`${base}/`);
      await page.waitForSelector('#empty-state');
      const text = (await page.textContent('#empty-state'))!;
      expect(text).toContain(`POSTHOG_HOST=${base}`);
      expect(text).toContain('POSTHOG_API_KEY=phc_anything');
      expect(text).toContain(`api_host: '${base}'`);
      await page.screenshot({ path: join(SCREENSHOTS, 'empty.png') });
      await page.close();
    } finally {
      const exited = new Promise((done) => empty.once('exit', done));
      empty.kill('SIGTERM');
      await exited;
    }
    expect(consoleProblems).toEqual([]);
  });

  it('npm run demo:traffic adds a mixed workload to the running demo and explorer', async () => {
    const before = await json('/api/summary');
    const result = await runScript('dist/scripts/demo-traffic.js', { DEMO_URL: demoUrl, POSTHOG_HOST: explorerUrl, DEMO_USERS: '3' });
    expect(result.code).toBe(0);
    expect(result.stdout + result.stderr).toMatch(/Demo traffic: \d+ API calls by 3 people, \d+ frontend events\./);
    const after = await waitUntil(
      'the new traffic',
      () => json('/api/summary'),
      (s) => s.requests >= before.requests + 15,
      30_000,
    );
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

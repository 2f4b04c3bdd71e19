import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';

const gzip = promisify(gzipCallback);

export interface DemoTrafficOptions {
  /** The demo API, e.g. http://127.0.0.1:3000. */
  apiUrl: string;
  /** Where frontend-style events go (the explorer or PostHog); without it only API calls are made. */
  posthogHost?: string;
  posthogKey?: string;
  /** Simulated people, each with their own browser id and session. Default 6. */
  users?: number;
  log?: (line: string) => void;
}

export interface DemoTrafficResult {
  requests: number;
  frontendEvents: number;
  /** Who took part: their final distinct ids and sessions. */
  users: { distinctId: string; sessionId: string }[];
}

interface FrontendEvent {
  event: string;
  uuid: string;
  timestamp: string;
  properties: Record<string, unknown>;
}

/**
 * One simulated browser: it keeps a posthog-js-like identity (an anonymous id,
 * then the user id after sign-up; one session id), sends the tracing headers
 * posthog-js sends, and records frontend events shaped like posthog-js's
 * (`$lib: web`), each API call's events carrying the call's `request_id`.
 */
class SimulatedBrowser {
  distinctId: string = randomUUID();
  readonly sessionId = randomUUID();
  private token?: string;
  readonly events: FrontendEvent[] = [];
  requests = 0;

  constructor(
    private readonly options: DemoTrafficOptions,
    private readonly page: string,
  ) {}

  capture(event: string, properties: Record<string, unknown> = {}) {
    this.events.push({
      event,
      uuid: randomUUID(),
      timestamp: new Date().toISOString(),
      properties: {
        distinct_id: this.distinctId,
        $session_id: this.sessionId,
        $lib: 'web',
        $current_url: new URL(this.page, this.options.apiUrl).href,
        $pathname: this.page,
        token: this.options.posthogKey,
        ...properties,
      },
    });
  }

  /** A click that calls the API: the click event, the call with its request id, then the outcome event with the id the API returned. */
  async click(
    button: string,
    method: string,
    path: string,
    outcome: string,
    body?: unknown,
  ): Promise<{ status: number; json: { user_id?: string } | undefined }> {
    const requestId = randomUUID();
    this.capture('button_click', { button_name: button, request_id: requestId });
    const started = Date.now();
    this.requests += 1;
    const response = await fetch(new URL(path, this.options.apiUrl), {
      method,
      headers: {
        'X-Request-ID': requestId,
        'X-POSTHOG-DISTINCT-ID': this.distinctId,
        'X-POSTHOG-SESSION-ID': this.sessionId,
        ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await response.json().catch(() => undefined)) as { user_id?: string } | undefined;
    this.capture(response.ok ? outcome : 'api_call_failed', {
      request_id: response.headers.get('x-request-id') ?? requestId,
      status: response.status,
      endpoint: path.split('?')[0],
      duration_ms: Date.now() - started,
    });
    return { status: response.status, json };
  }

  signedIn(userId: string) {
    const anonymous = this.distinctId;
    this.distinctId = userId;
    this.token = userId;
    // What posthog.identify() sends: links the anonymous browser to the user.
    this.capture('$identify', { $anon_distinct_id: anonymous });
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Each person's visit: sign up, look around, chat, and meet one kind of trouble. */
async function visit(browser: SimulatedBrowser, index: number) {
  browser.capture('$pageview');
  browser.capture('signup_started', { button_name: 'Sign up' });
  const signup = await browser.click('Sign up', 'POST', '/auth/signup', 'signup_completed', { email: `person${index}@example.com` });
  if (signup.json?.user_id) browser.signedIn(signup.json.user_id);
  await browser.click('My profile', 'GET', '/me', 'profile_viewed');
  await browser.click('Load item', 'GET', `/items/${1 + (index % 2)}`, 'item_viewed');
  browser.capture('chat_started', { button_name: 'Start chat', character_id: `character_${index % 3}` });
  for (let turn = 0; turn < 2; turn += 1) {
    await browser.click('Send message', 'POST', '/chat', 'chat_message_sent', { message: `hello #${turn}` });
    await pause(50);
  }
  // One kind of trouble per person, so every category shows up.
  const trouble = [
    ['Slow report', 'GET', `/slow?ms=${1100 + index * 100}`, 'report_loaded'],
    ['Ask the model', 'GET', '/errors/quota', 'answer_shown'],
    ['Ask the model', 'GET', '/errors/content-filter', 'answer_shown'],
    ['Refresh', 'GET', '/errors/connection', 'refreshed'],
    ['Checkout', 'GET', '/errors/application', 'checkout_done'],
    ['Open missing item', 'GET', '/items/999', 'item_viewed'],
    ['Admin', 'GET', '/admin', 'admin_opened'],
  ] as const;
  const [button, method, path, outcome] = trouble[index % trouble.length];
  await browser.click(button, method, path, outcome);
  if (index % 3 === 0) await browser.click('Bad item', 'POST', '/items', 'item_created', { name: '' });
}

/** posthog-js's wire format: a JSON array of events, gzip, `?compression=gzip-js`. */
async function sendFrontendEvents(options: DemoTrafficOptions, events: FrontendEvent[]) {
  if (!options.posthogHost || events.length === 0) return 0;
  const body = await gzip(JSON.stringify(events));
  const url = new URL('/i/v0/e/', options.posthogHost);
  url.searchParams.set('compression', 'gzip-js');
  url.searchParams.set('ver', 'demo-traffic');
  const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body });
  if (!response.ok) throw new Error(`${options.posthogHost} answered ${response.status} to the frontend events`);
  return events.length;
}

/**
 * A realistic mixed workload against the demo API: several people at once
 * sign up, browse, chat, and meet each error category and a slow call, with
 * frontend events around every call carrying the same `request_id`.
 */
export async function runDemoTraffic(options: DemoTrafficOptions): Promise<DemoTrafficResult> {
  const count = Math.min(Math.max(options.users ?? 6, 1), 50);
  const browsers = Array.from({ length: count }, () => new SimulatedBrowser(options, '/'));
  await Promise.all(browsers.map((browser, index) => visit(browser, index)));
  const frontendEvents = await sendFrontendEvents(
    options,
    browsers.flatMap((b) => b.events),
  );
  const result = {
    requests: browsers.reduce((sum, b) => sum + b.requests, 0),
    frontendEvents,
    users: browsers.map((b) => ({ distinctId: b.distinctId, sessionId: b.sessionId })),
  };
  options.log?.(`Demo traffic: ${result.requests} API calls by ${count} people, ${frontendEvents} frontend events.`);
  return result;
}

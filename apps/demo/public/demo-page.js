// The demo page: posthog-js sends the frontend events to the explorer (or PostHog),
// and its tracing headers tie each API call to this browser's distinct id and session.
'use strict';

const config = JSON.parse(document.getElementById('demo-config').textContent);
const posthog = window.posthog;
const tracking = Boolean(config.posthogKey && config.posthogHost && posthog);

if (tracking) {
  posthog.init(config.posthogKey, {
    api_host: config.posthogHost,
    // Adds X-POSTHOG-DISTINCT-ID and X-POSTHOG-SESSION-ID to this page's calls to its own API.
    tracing_headers: [location.hostname],
    person_profiles: 'identified_only',
    autocapture: false,
    capture_pageview: true,
    disable_session_recording: true,
    disable_surveys: true,
    persistence: 'localStorage',
    request_batching: true,
  });
}
const capture = (event, properties) => tracking && posthog.capture(event, properties);
const explorerLink = (requestId) => (config.posthogHost ? `${config.posthogHost}/#journey?request_id=${encodeURIComponent(requestId)}` : null);

document.getElementById('status').textContent = tracking
  ? `posthog-js sends to ${config.posthogHost}; distinct id ${posthog.get_distinct_id()}, session ${posthog.get_session_id()}.`
  : 'posthog-js is off: no POSTHOG_HOST and POSTHOG_API_KEY. Start the demo with npm start to send events to the journey explorer.';

let userId = null;

/** Each button: the API call it makes, and the frontend event that reports its success. */
const ACTIONS = {
  'Sign up': () => ({ method: 'POST', path: '/auth/signup', body: { email: document.getElementById('email').value }, success: 'signup_completed', before: 'signup_started' }),
  'My profile': () => ({ method: 'GET', path: '/me', success: 'profile_viewed' }),
  'Start chat': () => ({ method: 'GET', path: '/items/1', success: 'chat_started' }),
  'Send message': () => ({ method: 'POST', path: '/chat', body: { message: document.getElementById('message').value }, success: 'chat_message_sent' }),
  'Load item': () => ({ method: 'GET', path: '/items/2', success: 'item_viewed' }),
  'Slow report': () => ({ method: 'GET', path: '/slow?ms=1200', success: 'report_loaded' }),
  'Quota error': () => ({ method: 'GET', path: '/errors/quota', success: 'answer_shown' }),
  'Content filter': () => ({ method: 'GET', path: '/errors/content-filter', success: 'answer_shown' }),
  'Connection error': () => ({ method: 'GET', path: '/errors/connection', success: 'refreshed' }),
  'Application error': () => ({ method: 'GET', path: '/errors/application', success: 'checkout_done' }),
  'Missing item': () => ({ method: 'GET', path: '/items/999', success: 'item_viewed' }),
  'Generate traffic': () => ({ method: 'POST', path: '/demo/traffic', success: 'traffic_started' }),
};

function logCall(button, status, requestId, ms) {
  const item = document.createElement('li');
  item.className = status >= 400 || status === 0 ? 'failed' : '';
  item.dataset.requestId = requestId;
  item.append(`${button} → ${status || 'network error'} in ${ms} ms, request `);
  const href = explorerLink(requestId);
  const id = document.createElement(href ? 'a' : 'code');
  id.textContent = requestId;
  if (href) Object.assign(id, { href, target: '_blank', rel: 'noopener' });
  item.append(id);
  document.getElementById('calls').prepend(item);
}

/** A click: the click event with a fresh request id, the call carrying it, then the outcome with the id the API returned. */
async function click(button) {
  const action = ACTIONS[button]();
  const requestId = crypto.randomUUID();
  capture('button_click', { button_name: button, request_id: requestId });
  if (action.before) capture(action.before, { request_id: requestId });
  const started = performance.now();
  let status;
  let returnedId = requestId;
  let json;
  try {
    const response = await fetch(action.path, {
      method: action.method,
      headers: {
        'X-Request-ID': requestId,
        ...(userId ? { Authorization: `Bearer ${userId}` } : {}),
        ...(action.body ? { 'Content-Type': 'application/json' } : {}),
      },
      body: action.body ? JSON.stringify(action.body) : undefined,
    });
    status = response.status;
    returnedId = response.headers.get('X-Request-ID') ?? requestId;
    json = await response.json().catch(() => undefined);
  } catch {
    status = 0;
  }
  const ms = Math.round(performance.now() - started);
  capture(status >= 200 && status < 400 ? action.success : 'api_call_failed', { request_id: returnedId, status, endpoint: action.path.split('?')[0], duration_ms: ms });
  if (button === 'Sign up' && json?.user_id) {
    userId = json.user_id;
    // From here on the browser is this user: its events and its API calls carry the user id.
    if (tracking) posthog.identify(userId);
  }
  logCall(button, status, returnedId, ms);
}

for (const button of document.querySelectorAll('button[data-button]')) {
  button.addEventListener('click', () => click(button.dataset.button));
}
document.body.dataset.ready = 'true';

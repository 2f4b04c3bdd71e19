// The journey explorer's page: plain DOM and Chart.js, drawing the JSON API's answers.
// Every value from an event goes in through textContent, never as HTML.
'use strict';

const pages = ['requests', 'journey', 'errors', 'performance'];
const charts = {};
let refreshTimer;

/** Builds an element: el('a', { href: '#x', class: 'id' }, 'text', child). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('data-')) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
  return node;
}

function route() {
  const [page, query] = location.hash.slice(1).split('?');
  return { page: pages.includes(page) ? page : 'requests', params: new URLSearchParams(query ?? '') };
}

function go(page, params) {
  const query = new URLSearchParams([...params].filter(([, v]) => v !== '')).toString();
  location.hash = query ? `${page}?${query}` : page;
}

const journeyHref = (kind, value) => `#journey?${new URLSearchParams({ [kind]: value })}`;
const shortId = (id) => (id && id.length > 13 ? `${id.slice(0, 8)}…` : id);

/** A request id, user or session as a link to its journey. */
function journeyLink(kind, value) {
  if (!value) return el('span', { class: 'muted' }, '—');
  return el('a', { href: journeyHref(kind, value), title: value, class: 'id', 'data-kind': kind }, shortId(value));
}

const time = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false }) + '.' + iso.slice(20, 23);
/** A bucket's label: the time of day, with the date once buckets are hours or longer. */
const bucketTime = (iso, bucketMs) =>
  bucketMs >= 3_600_000 ? `${new Date(iso).toLocaleDateString()} ${new Date(iso).toLocaleTimeString([], { hour12: false, hour: '2-digit', minute: '2-digit' })}` : new Date(iso).toLocaleTimeString([], { hour12: false });
const dateTime = (iso) => `${new Date(iso).toLocaleDateString()} ${time(iso)}`;
const ms = (value) => (value === null || value === undefined ? '—' : `${value} ms`);
const statusClass = (code) => (code >= 500 ? 'status s5' : code >= 400 ? 'status s4' : 'status s2');

async function api(path, params) {
  const response = await fetch(`/api/${path}${params && [...params].length ? `?${params}` : ''}`);
  const body = await response.json();
  if (!response.ok) throw new Error(body.message ?? `HTTP ${response.status}`);
  return body;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
  if (rows.length === 0) {
    const columns = tbody.closest('table').querySelectorAll('th').length;
    tbody.append(el('tr', {}, el('td', { colSpan: columns, class: 'muted' }, 'Nothing yet.')));
  }
}

function drawChart(id, config) {
  if (!window.Chart) return;
  charts[id]?.destroy();
  charts[id] = new Chart(document.getElementById(id), { ...config, options: { animation: false, maintainAspectRatio: false, ...config.options } });
}

const palette = ['#2563eb', '#dc2626', '#d97706', '#059669', '#7c3aed', '#db2777', '#0891b2', '#65a30d'];

// ----- Requests -----------------------------------------------------------

async function showRequests(params) {
  const { total, requests } = await api('requests', params);
  document.getElementById('requests-count').textContent = `${requests.length} of ${total} requests`;
  fill(
    document.querySelector('#requests-table tbody'),
    requests.map((r) =>
      el(
        'tr',
        { 'data-request-id': r.request_id, class: r.error_type ? 'is-error' : r.slow ? 'is-slow' : '' },
        el('td', {}, time(r.timestamp)),
        el('td', {}, r.method),
        el('td', {}, el('code', {}, r.endpoint)),
        el('td', {}, el('span', { class: statusClass(r.status_code) }, r.status_code), r.error_type ? el('span', { class: 'tag error' }, r.error_type) : null),
        el('td', {}, ms(r.response_time_ms), r.slow ? el('span', { class: 'tag slow' }, 'slow') : null),
        el('td', {}, journeyLink('distinct_id', r.distinct_id)),
        el('td', {}, journeyLink('request_id', r.request_id)),
        el('td', {}, journeyLink('session_id', r.session_id)),
      ),
    ),
  );
}

// ----- Journey ------------------------------------------------------------

const isError = (e) => e.event === 'api_error' || e.event === '$exception' || Number(e.properties.status_code) >= 500;
const isSlow = (e) => e.event === 'slow_request';

/** The few properties that say what an event was, shown on its line. */
function eventSummary(e) {
  const p = e.properties;
  const parts = [];
  if (p.method && p.endpoint) parts.push(`${p.method} ${p.endpoint}`);
  else if (p.endpoint) parts.push(p.endpoint);
  if (p.status_code !== undefined) parts.push(`→ ${p.status_code}`);
  if (p.response_time_ms !== undefined) parts.push(`${p.response_time_ms} ms`);
  if (e.event === 'slow_request') parts.push(`${p.duration_ms} ms > ${p.threshold_ms} ms`);
  else if (p.duration_ms !== undefined) parts.push(`${p.duration_ms} ms`);
  if (p.status !== undefined) parts.push(`status ${p.status}`);
  if (p.error_type) parts.push(p.error_type);
  if (p.error_message) parts.push(`“${String(p.error_message).slice(0, 120)}”`);
  if (p.button_name) parts.push(`“${p.button_name}”`);
  if (e.event === '$pageview' && p.$pathname) parts.push(p.$pathname);
  return parts.join('  ');
}

async function showJourney(params) {
  const form = document.getElementById('journey-form');
  const kind = ['request_id', 'distinct_id', 'session_id'].find((k) => params.get(k));
  const summary = document.getElementById('journey-summary');
  const timeline = document.getElementById('timeline');
  if (!kind) {
    summary.textContent = 'Enter a request id, a user or a session, or click one in any table.';
    timeline.replaceChildren();
    return;
  }
  form.kind.value = kind;
  form.value.value = params.get(kind);
  const { events, truncated } = await api('journey', new URLSearchParams({ [kind]: params.get(kind) }));
  const frontend = events.filter((e) => e.source === 'frontend').length;
  const start = events.length ? new Date(events[0].timestamp).getTime() : 0;
  const span = events.length ? new Date(events[events.length - 1].timestamp).getTime() - start : 0;
  summary.textContent = events.length
    ? `${events.length} events${truncated ? ' (the latest)' : ''}: ${frontend} from the frontend, ${events.length - frontend} from the backend, over ${span} ms.`
    : `No events for ${kind} ${params.get(kind)}.`;
  timeline.replaceChildren(
    ...events.map((e) => {
      const p = e.properties;
      const marks = isError(e) ? 'is-error' : isSlow(e) ? 'is-slow' : '';
      return el(
        'li',
        { class: `${e.source} ${marks}`, 'data-source': e.source, 'data-event': e.event },
        el('span', { class: 'when', title: e.timestamp }, time(e.timestamp), el('small', {}, ` +${new Date(e.timestamp).getTime() - start} ms`)),
        el('span', { class: `tag ${e.source}` }, e.source),
        el('strong', { class: 'event-name' }, e.event),
        el('span', { class: 'what' }, eventSummary(e)),
        el(
          'span',
          { class: 'links' },
          kind !== 'request_id' && p.request_id ? journeyLink('request_id', p.request_id) : null,
          kind !== 'distinct_id' ? journeyLink('distinct_id', e.distinct_id) : null,
          kind !== 'session_id' && p.$session_id ? journeyLink('session_id', p.$session_id) : null,
        ),
        el('details', {}, el('summary', {}, 'properties'), el('pre', {}, JSON.stringify(p, null, 2))),
      );
    }),
  );
}

// ----- Errors -------------------------------------------------------------

async function showErrors(params) {
  const data = await api('errors', params);
  const types = [...new Set(data.over_time.map((r) => r.error_type))];
  const buckets = data.buckets;
  drawChart('errors-over-time', {
    type: 'bar',
    data: {
      labels: buckets.map((b) => bucketTime(b, data.bucket_ms)),
      datasets: types.map((type, i) => ({
        label: type,
        backgroundColor: palette[i % palette.length],
        data: buckets.map((b) => data.over_time.find((r) => r.bucket === b && r.error_type === type)?.count ?? 0),
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });
  drawChart('errors-by-endpoint', {
    type: 'bar',
    data: {
      labels: data.by_endpoint.map((r) => `${r.method} ${r.endpoint}`),
      datasets: [{ label: 'api_error', backgroundColor: palette[1], data: data.by_endpoint.map((r) => r.count) }],
    },
    options: { indexAxis: 'y', plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  const filterLink = (key, value) => {
    const next = new URLSearchParams(params);
    next.set(key, value);
    return el('a', { href: `#errors?${next}` }, value);
  };
  fill(
    document.querySelector('#errors-by-type tbody'),
    data.by_type.map((r) => el('tr', { 'data-error-type': r.error_type }, el('td', {}, filterLink('error_type', r.error_type)), el('td', {}, r.count), el('td', {}, dateTime(r.last_seen)))),
  );
  fill(
    document.querySelector('#errors-endpoints tbody'),
    data.by_endpoint.map((r) =>
      el('tr', {}, el('td', {}, `${r.method} `, filterLink('endpoint', r.endpoint)), el('td', {}, r.count), el('td', {}, r.error_types), el('td', {}, dateTime(r.last_seen))),
    ),
  );
  const latest = data.latest;
  document.getElementById('latest-error').replaceChildren(
    latest
      ? el(
          'div',
          { class: 'latest' },
          el('p', {}, el('span', { class: 'tag error' }, latest.error_type), ` ${latest.exception_type ?? ''} at ${latest.method} ${latest.endpoint} (${latest.status_code}), ${dateTime(latest.timestamp)} `, journeyLink('request_id', latest.request_id)),
          el('p', {}, latest.error_message ?? ''),
          el('pre', { class: 'traceback' }, latest.traceback ?? '(no traceback)'),
        )
      : el('p', { class: 'muted' }, 'No errors.'),
  );
  fill(
    document.querySelector('#errors-recent tbody'),
    data.recent.map((r) =>
      el(
        'tr',
        {},
        el('td', {}, time(r.timestamp)),
        el('td', {}, el('span', { class: 'tag error' }, r.error_type)),
        el('td', {}, `${r.method ?? ''} `, el('code', {}, r.endpoint ?? '')),
        el('td', {}, el('span', { class: statusClass(r.status_code) }, r.status_code)),
        el('td', { class: 'message' }, r.error_message ?? ''),
        el('td', {}, journeyLink('distinct_id', r.distinct_id)),
        el('td', {}, journeyLink('request_id', r.request_id)),
      ),
    ),
  );
}

// ----- Performance --------------------------------------------------------

async function showPerformance(params) {
  const data = await api('performance', params);
  const labels = data.endpoints.map((r) => `${r.method} ${r.endpoint}`);
  drawChart('latency-by-endpoint', {
    type: 'bar',
    data: {
      labels,
      datasets: ['p50_ms', 'p95_ms', 'p99_ms'].map((key, i) => ({ label: key.replace('_ms', ''), backgroundColor: palette[[3, 2, 1][i]], data: data.endpoints.map((r) => r[key]) })),
    },
    // Logarithmic: a slow endpoint would otherwise flatten every other bar.
    options: { indexAxis: 'y', scales: { x: { type: 'logarithmic' } } },
  });
  drawChart('latency-over-time', {
    type: 'line',
    data: {
      labels: data.over_time.map((r) => bucketTime(r.bucket, data.bucket_ms)),
      datasets: ['p50_ms', 'p95_ms', 'p99_ms'].map((key, i) => ({
        label: key.replace('_ms', ''),
        borderColor: palette[[3, 2, 1][i]],
        backgroundColor: palette[[3, 2, 1][i]],
        data: data.over_time.map((r) => r[key]),
      })),
    },
    options: { scales: { y: { beginAtZero: true } } },
  });
  const percent = (rate) => `${Math.round(rate * 1000) / 10} %`;
  fill(
    document.querySelector('#performance-table tbody'),
    data.endpoints.map((r) =>
      el(
        'tr',
        { 'data-endpoint': r.endpoint },
        el('td', {}, `${r.method} `, el('code', {}, r.endpoint)),
        el('td', {}, r.requests),
        el('td', { class: r.error_rate > 0 ? 'bad' : '' }, percent(r.error_rate)),
        el('td', {}, percent(r.client_error_rate)),
        el('td', {}, ms(r.p50_ms)),
        el('td', {}, ms(r.p95_ms)),
        el('td', {}, ms(r.p99_ms)),
        el('td', { class: r.slow_requests > 0 ? 'warn' : '' }, r.slow_requests),
      ),
    ),
  );
}

// ----- Frame --------------------------------------------------------------

async function showSummary() {
  const s = await api('summary');
  document.getElementById('summary').textContent =
    `${s.events} events · ${s.requests} requests · ${s.errors} errors · ${s.frontend_events} from browsers · ${s.users} users · ${s.sessions} sessions`;
  document.getElementById('traffic').hidden = !s.demo_traffic;
}

const views = { requests: showRequests, journey: showJourney, errors: showErrors, performance: showPerformance };

async function render() {
  const { page, params } = route();
  for (const name of pages) document.getElementById(`page-${name}`).hidden = name !== page;
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.page === page);
  const filters = document.getElementById('filters');
  filters.hidden = page === 'journey';
  filters.querySelector('.errors-only').hidden = page !== 'errors';
  for (const input of filters.elements) if (input.name) input.value = params.get(input.name) ?? (input.name === 'since' ? 'all' : '');
  clearTimeout(refreshTimer);
  try {
    await Promise.all([views[page](params), showSummary()]);
    document.body.dataset.loaded = page;
  } catch (error) {
    document.getElementById('summary').textContent = `Could not load: ${error.message}`;
  }
  // The live pages follow new events; a journey stays as loaded until asked again.
  if (page !== 'journey') refreshTimer = setTimeout(render, 2000);
}

document.getElementById('filters').addEventListener('submit', (event) => {
  event.preventDefault();
  go(route().page, new FormData(event.target));
});
document.getElementById('filters').addEventListener('reset', () => setTimeout(() => go(route().page, new URLSearchParams())));
document.getElementById('journey-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.target;
  go('journey', new URLSearchParams({ [form.kind.value]: form.value.value.trim() }));
});
document.getElementById('traffic').addEventListener('click', async (event) => {
  const button = event.target;
  button.disabled = true;
  button.textContent = 'Generating…';
  try {
    const response = await fetch('/api/demo-traffic', { method: 'POST' });
    button.textContent = response.ok ? 'Traffic started' : 'The demo did not answer';
  } catch {
    button.textContent = 'The explorer did not answer';
  } finally {
    setTimeout(() => {
      button.disabled = false;
      button.textContent = 'Generate traffic';
    }, 3000);
  }
});
window.addEventListener('hashchange', render);
render();

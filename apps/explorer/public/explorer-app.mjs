// The journey explorer's page: Preact + htm, served from node_modules as ES modules (no build step).
// Event data only ever reaches the DOM as text (Preact sets text nodes and attributes; nothing here
// parses HTML). Live: one Server-Sent Events stream says when events were stored; each page then
// reloads its data, unless the user is selecting text. Preact's diffing keeps every DOM node whose
// content did not change, so an input being typed in or a row being read is never rewritten.
import { h, render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { duration, groupJourney, position } from './waterfall.mjs';

const html = htm.bind(h);

// ----- Routing: #page?query, #issue/<id>?query ----------------------------------------------

const PAGES = ['requests', 'journey', 'issues', 'issue', 'performance'];

function parseRoute() {
  const [path, query] = location.hash.slice(1).split('?');
  const [page, arg] = path.split('/');
  const name = page === 'errors' ? 'issues' : page;
  return { page: PAGES.includes(name) ? name : 'requests', arg: arg ? decodeURIComponent(arg) : null, params: new URLSearchParams(query ?? ''), key: location.hash };
}

const href = (page, params) => {
  const query = new URLSearchParams([...new URLSearchParams(params ?? {})].filter(([, v]) => v !== '' && v !== null && v !== undefined)).toString();
  return `#${page}${query ? `?${query}` : ''}`;
};
const go = (page, params) => {
  location.hash = href(page, params);
};

function useRoute() {
  const [route, setRoute] = useState(parseRoute);
  useEffect(() => {
    const on = () => setRoute(parseRoute());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

// ----- Live updates ---------------------------------------------------------------------------

/** A selection of text on the page: live reloads wait until it is gone, so copying is never a race. */
const hasSelection = () => (document.getSelection()?.toString() ?? '') !== '';
/**
 * A reload is owed: new events arrived while live updates waited (paused, or text selected), or a reload
 * already on its way when text was selected came back meanwhile and its answer was dropped (`useApi`).
 * The page reloads once it may (`useLive`).
 */
let reloadOwed = false;

function useLive() {
  const [tick, setTick] = useState(0);
  const [state, setState] = useState('connecting');
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);
  pausedRef.current = paused;
  useEffect(() => {
    const fire = () => {
      if (pausedRef.current || hasSelection()) reloadOwed = true;
      else setTick((t) => t + 1);
    };
    const source = new EventSource('/api/live');
    source.addEventListener('events', fire);
    source.onopen = () => setState('live');
    source.onerror = () => setState('reconnecting');
    const onSelection = () => {
      if (reloadOwed && !hasSelection() && !pausedRef.current) {
        reloadOwed = false;
        setTick((t) => t + 1);
      }
    };
    document.addEventListener('selectionchange', onSelection);
    return () => {
      source.close();
      document.removeEventListener('selectionchange', onSelection);
    };
  }, []);
  const toggle = useCallback(() => {
    setPaused((p) => {
      if (p && reloadOwed) {
        reloadOwed = false;
        setTick((t) => t + 1);
      }
      return !p;
    });
  }, []);
  return { tick, state, paused, toggle };
}

// ----- Data ---------------------------------------------------------------------------------

async function api(path, params) {
  const query = params ? new URLSearchParams(params).toString() : '';
  const response = await fetch(`/api/${path}${query ? `?${query}` : ''}`);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(Array.isArray(body.message) ? body.message.join('; ') : (body.message ?? `HTTP ${response.status}`));
  return body;
}

/** Loads `path` with `params`, again on every live tick; keeps the last answer while a new one loads or fails. */
function useApi(path, params, tick) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const query = params ? new URLSearchParams(params).toString() : '';
  const last = useRef('');
  useEffect(() => {
    if (path === null) return undefined;
    let cancelled = false;
    const target = `${path}?${query}`;
    const fresh = last.current !== target;
    last.current = target;
    if (fresh) setState(() => ({ data: undefined, error: null, loading: true }));
    api(path, new URLSearchParams(query))
      .then((data) => {
        if (cancelled) return;
        // A live reload answered while text is selected (it left before the selection was made).
        if (!fresh && hasSelection()) reloadOwed = true;
        else setState({ data, error: null, loading: false });
      })
      .catch((error) => !cancelled && setState((s) => ({ data: fresh ? undefined : s.data, error: error.message, loading: false })));
    return () => {
      cancelled = true;
    };
  }, [path, query, tick]);
  return state;
}

// ----- Formatting ---------------------------------------------------------------------------

const pad = (n, w = 2) => String(n).padStart(w, '0');
const clock = (iso) => {
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
};
const dateTime = (iso) => {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? clock(iso).slice(0, 8) : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(iso).slice(0, 5)}`;
};
const ago = (iso) => {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
};
const ms = (v) => (v === null || v === undefined ? '—' : duration(v));
const statusClass = (code) => (code >= 500 ? 's5' : code >= 400 ? 's4' : code >= 300 ? 's3' : 's2');
/** Long ids keep their head and their tail: UUIDv7s share their first characters (a timestamp), `myapp-orders-1` and `-2` their head. */
const shortId = (id) => (id.length <= 18 ? id : `${id.slice(0, 6)}…${id.slice(-9)}`);

// ----- Small components ---------------------------------------------------------------------

const COPY_ICON = html`<svg width="12" height="12" viewBox="0 0 16 16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.5"><rect x="5.5" y="5.5" width="8" height="8" rx="1.5" /><path d="M3.5 10.5h-1a1 1 0 0 1-1-1v-7a1 1 0 0 1 1-1h7a1 1 0 0 1 1 1v1" /></svg>`;

function CopyButton({ text, label }) {
  const [done, setDone] = useState(false);
  const copy = async (event) => {
    event.preventDefault();
    event.stopPropagation();
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Without clipboard permission (http, an old browser): select it so Ctrl+C copies it.
      const range = document.createRange();
      range.selectNodeContents(event.currentTarget.previousSibling ?? event.currentTarget);
      document.getSelection().removeAllRanges();
      document.getSelection().addRange(range);
    }
    setDone(true);
    setTimeout(() => setDone(false), 1200);
  };
  return html`<button type="button" class="copy" title=${`Copy ${label ?? ''} ${text}`} aria-label=${`Copy ${label ?? 'id'}`} onClick=${copy}>${done ? '✓' : COPY_ICON}</button>`;
}

/** A request id, user or session: a link to its journey, the full id on hover, a copy button. */
function IdLink({ kind, value, label }) {
  if (!value) return html`<span class="muted">—</span>`;
  return html`<span class="idcell"
    ><a class="id" data-kind=${kind} title=${value} href=${href('journey', { [kind]: value })}>${label ?? shortId(value)}</a
    ><${CopyButton} text=${value} label=${kind} /></span>`;
}

/** An id that links nowhere in the explorer (an $exception uuid, a Sentry event id), or out when a host is configured. */
function ExternalId({ value, template, label }) {
  if (!value) return html`<span class="muted">—</span>`;
  const url = template ? template.replace('{id}', encodeURIComponent(value)) : null;
  return html`<span class="idcell"
    >${url ? html`<a class="id out" href=${url} target="_blank" rel="noopener noreferrer" title=${`${label} ${value}`}>${shortId(value)} ↗</a>` : html`<code class="id" title=${value}>${shortId(value)}</code>`}<${CopyButton}
      text=${value}
      label=${label}
  /></span>`;
}

function Status({ code, errorType }) {
  if (code === null || code === undefined) return html`<span class="muted">—</span>`;
  return html`<span class=${`status ${statusClass(code)}`}>${code}</span>${errorType ? html` <span class=${`tag ${code >= 500 ? 'error' : 'client'}`}>${errorType}</span>` : null}`;
}

function Sparkline({ values, width = 120, height = 24, kind }) {
  const max = Math.max(1, ...values);
  const w = width / values.length;
  return html`<svg class=${`spark ${kind ?? ''}`} width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${`${values.reduce((a, b) => a + b, 0)} over time`}>
    ${values.map((v, i) => (v ? html`<rect x=${i * w + 0.5} y=${height - Math.max(2, (v / max) * height)} width=${Math.max(1, w - 1)} height=${Math.max(2, (v / max) * height)} />` : null))}
    <line x1="0" x2=${width} y1=${height - 0.5} y2=${height - 0.5} />
  </svg>`;
}

/** Sorting a table by a column: click once for descending (numbers) / ascending (text), again to flip. */
function useSort(rows, initialKey, initialDir = 'desc') {
  const [sort, setSort] = useState({ key: initialKey, dir: initialDir });
  const sorted = useMemo(() => {
    if (!rows) return rows;
    const sign = sort.dir === 'asc' ? 1 : -1;
    return [...rows].sort((a, b) => {
      const x = a[sort.key];
      const y = b[sort.key];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))) * sign;
    });
  }, [rows, sort.key, sort.dir]);
  const th = (key, label, numeric) =>
    html`<th aria-sort=${sort.key === key ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none'} class=${numeric ? 'num' : ''}>
      <button type="button" class="sort" data-sort=${key} onClick=${() => setSort((s) => ({ key, dir: s.key === key ? (s.dir === 'asc' ? 'desc' : 'asc') : numeric ? 'desc' : 'asc' }))}>
        ${label}${sort.key === key ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ''}
      </button>
    </th>`;
  return { sorted, th };
}

function Empty({ children }) {
  return html`<p class="empty muted">${children}</p>`;
}

function ErrorBanner({ error }) {
  return error ? html`<p class="api-error" role="alert" id="api-error">${error}</p>` : null;
}

/** What to do when the explorer holds no events at all: the two variables to set, and the browser's init. */
function GetStarted({ demo }) {
  const origin = location.origin;
  return html`<section class="get-started" id="empty-state">
    <h2>No events yet</h2>
    <p>Point your app's telemetry at this explorer, then use your app:</p>
    <pre><code>POSTHOG_HOST=${origin}\nPOSTHOG_API_KEY=phc_anything</code></pre>
    <p>and, in the browser, posthog-js:</p>
    <pre><code>posthog.init('phc_anything', { api_host: '${origin}', tracing_headers: ['your.api.host'] })</code></pre>
    ${demo ? html`<p>Or press <strong>Generate traffic</strong> above to run the demo's workload.</p>` : html`<p>Or run <code>npm start</code> for the demo and its traffic.</p>`}
  </section>`;
}

// ----- Filters --------------------------------------------------------------------------------

const SINCE = [
  ['15m', 'last 15 min'],
  ['1h', 'last hour'],
  ['24h', 'last 24 h'],
  ['7d', 'last 7 days'],
  ['all', 'all time'],
  ['custom', 'custom…'],
];
const FILTER_KEYS = ['q', 'user', 'endpoint', 'status', 'error_type', 'since', 'from', 'to'];
/** `<input type=datetime-local>` value for an ISO time or epoch ms, and back. */
const toLocalInput = (value) => {
  if (!value) return '';
  const d = new Date(/^\d+$/.test(value) ? Number(value) : value);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
const fromLocalInput = (value) => (value ? new Date(value).toISOString() : '');

/**
 * The filter bar. What the user types is its own state: it is set from the address only when the
 * address changed from outside (a link, back/forward), never by a live update, and is applied on
 * Enter or Apply (a time range at once).
 */
function Filters({ page, params, fields, exact }) {
  const fromParams = () => {
    const d = Object.fromEntries(FILTER_KEYS.map((k) => [k, params.get(k) ?? '']));
    if (!d.since) d.since = d.from || d.to ? 'custom' : 'all';
    return d;
  };
  const [draft, setDraft] = useState(fromParams);
  const applied = useRef(params.toString());
  useEffect(() => {
    if (params.toString() !== applied.current) {
      applied.current = params.toString();
      setDraft(fromParams());
    }
  }, [params.toString()]);
  const apply = (next) => {
    const d = next ?? draft;
    const out = new URLSearchParams(params);
    for (const k of FILTER_KEYS) out.delete(k);
    out.delete('page');
    for (const k of FILTER_KEYS) {
      if (k === 'from' || k === 'to' ? d.since === 'custom' && d[k] : d[k] && !(k === 'since' && (d[k] === 'all' || d[k] === 'custom'))) out.set(k, d[k].trim());
    }
    applied.current = out.toString();
    go(page, out);
  };
  const set = (k) => (event) => setDraft((d) => ({ ...d, [k]: event.currentTarget.value }));
  const text = (k, label, placeholder, size) =>
    fields.includes(k)
      ? html`<label class=${`f-${k}`}>${label}<input name=${k} value=${draft[k]} placeholder=${placeholder} size=${size} autocomplete="off" spellcheck=${false} onInput=${set(k)} /></label>`
      : null;
  return html`<form
    id="filters"
    class="filters"
    onSubmit=${(e) => {
      e.preventDefault();
      apply();
    }}
  >
    ${text('q', 'Search', 'endpoint, user, request id, event', 28)} ${text('user', exact ? 'User' : 'User contains', 'distinct_id', 14)}
    ${text('endpoint', exact ? 'Endpoint' : 'Endpoint contains', exact ? '/items/:id' : '/items', 12)} ${text('status', 'Status', '500 or 5xx', 7)}
    ${text('error_type', 'Error type', 'quota_error', 12)}
    <label
      >Time
      <select
        name="since"
        value=${draft.since}
        onChange=${(e) => {
          const next = { ...draft, since: e.currentTarget.value };
          setDraft(next);
          if (next.since !== 'custom') apply(next);
        }}
      >
        ${SINCE.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
      </select></label
    >
    ${draft.since === 'custom'
      ? html`<label
            >From<input type="datetime-local" name="from" value=${toLocalInput(draft.from)} onInput=${(e) => setDraft((d) => ({ ...d, from: fromLocalInput(e.currentTarget.value) }))}
          /></label>
          <label>To<input type="datetime-local" name="to" value=${toLocalInput(draft.to)} onInput=${(e) => setDraft((d) => ({ ...d, to: fromLocalInput(e.currentTarget.value) }))} /></label>`
      : null}
    <button type="submit">Apply</button>
    <button
      type="button"
      class="secondary"
      onClick=${() => {
        const cleared = Object.fromEntries(FILTER_KEYS.map((k) => [k, '']));
        cleared.since = 'all';
        setDraft(cleared);
        apply(cleared);
      }}
    >
      Clear
    </button>
  </form>`;
}

const hasFilters = (params) => FILTER_KEYS.some((k) => params.get(k) && !(k === 'since' && params.get(k) === 'all'));
const filterParams = (params) => new URLSearchParams([...params].filter(([k]) => FILTER_KEYS.includes(k) && k !== 'q'));

function NoMatch({ page }) {
  return html`<p class="empty muted" id="no-match">No match for these filters. <a href=${href(page)}>Clear them</a>.</p>`;
}

// ----- Requests -------------------------------------------------------------------------------

const PAGE_SIZE = 50;

function RequestsPage({ route, tick }) {
  const { params } = route;
  const pageNo = Math.max(1, Number(params.get('page')) || 1);
  const sort = params.get('sort') ?? 'time';
  const dir = params.get('dir') ?? 'desc';
  const query = new URLSearchParams(params);
  query.delete('page');
  query.set('offset', String((pageNo - 1) * PAGE_SIZE));
  query.set('limit', String(PAGE_SIZE));
  const { data, error } = useApi('request-search', query, tick);
  const link = (changes) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null) next.delete(k);
      else next.set(k, String(v));
    }
    return href('requests', next);
  };
  const th = (key, label, numeric) => {
    const active = sort === key;
    const nextDir = active ? (dir === 'asc' ? 'desc' : 'asc') : numeric || key === 'time' ? 'desc' : 'asc';
    return html`<th aria-sort=${active ? (dir === 'asc' ? 'ascending' : 'descending') : 'none'} class=${numeric ? 'num' : ''}>
      <a class="sort" data-sort=${key} href=${link({ sort: key, dir: nextDir, page: null })}>${label}${active ? (dir === 'asc' ? ' ▲' : ' ▼') : ''}</a>
    </th>`;
  };
  const pages = data ? Math.max(1, Math.ceil(data.total / PAGE_SIZE)) : 1;
  return html`<section id="page-requests">
    <${Filters} page="requests" params=${params} fields=${['q', 'user', 'endpoint', 'status', 'error_type']} />
    <${ErrorBanner} error=${error} />
    ${data
      ? html`<p class="count" id="requests-count">
            ${data.total === 0 ? '0 requests' : `${data.offset + 1}–${data.offset + data.requests.length} of ${data.total} requests`}
            <span class="muted"> · newest first unless sorted · live</span>
          </p>
          ${data.total === 0
            ? hasFilters(params)
              ? html`<${NoMatch} page="requests" />`
              : html`<${Empty}>No API requests yet.<//>`
            : html`<div class="table-wrap">
                <table id="requests-table" class="data">
                  <thead>
                    <tr>
                      ${th('time', 'Time')} ${th('method', 'Method')} ${th('endpoint', 'Endpoint')} ${th('status', 'Status', true)}
                      ${th('latency', 'Latency', true)} ${th('user', 'User')}
                      <th>Request id</th>
                      <th class="wide-only">Session</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${data.requests.map(
                      (r) => html`<tr key=${r.request_id ?? r.timestamp} data-request-id=${r.request_id} class=${r.status_code >= 500 ? 'is-error' : r.status_code >= 400 ? 'is-client-error' : r.slow ? 'is-slow' : ''}>
                        <td class="nowrap" title=${r.timestamp}>${clock(r.timestamp)}</td>
                        <td>${r.method}</td>
                        <td><a class="endpoint" href=${link({ endpoint: r.endpoint, page: null })} title="Only this endpoint"><code>${r.endpoint}</code></a></td>
                        <td class="nowrap"><${Status} code=${r.status_code} errorType=${r.error_type} /></td>
                        <td class="num nowrap">${ms(r.response_time_ms)}${r.slow ? html` <span class="tag slow">slow</span>` : null}</td>
                        <td><${IdLink} kind="distinct_id" value=${r.distinct_id} /></td>
                        <td><${IdLink} kind="request_id" value=${r.request_id} /></td>
                        <td class="wide-only"><${IdLink} kind="session_id" value=${r.session_id} /></td>
                      </tr>`,
                    )}
                  </tbody>
                </table>
              </div>
              <nav class="pager" aria-label="Pages">
                ${pageNo > 1 ? html`<a href=${link({ page: pageNo - 1 })} rel="prev">← Newer</a>` : html`<span class="muted">← Newer</span>`}
                <span>page ${pageNo} of ${pages}</span>
                ${pageNo < pages ? html`<a href=${link({ page: pageNo + 1 })} rel="next" id="next-page">Older →</a>` : html`<span class="muted">Older →</span>`}
              </nav>`}`
      : html`<p class="muted">Loading…</p>`}
  </section>`;
}

// ----- Journey --------------------------------------------------------------------------------

const KINDS = [
  ['request_id', 'request_id'],
  ['distinct_id', 'user (distinct_id)'],
  ['session_id', '$session_id'],
];

/** The few properties that say what an event was. */
function eventSummary(e) {
  const p = e.properties;
  const parts = [];
  if (p.button_name) parts.push(`“${p.button_name}”`);
  if (e.event === 'api_request') {
    // The bar shows method, endpoint and status; nothing to repeat.
  } else if (p.method && p.endpoint) parts.push(`${p.method} ${p.endpoint}`);
  else if (p.endpoint) parts.push(p.endpoint);
  if (p.status !== undefined) parts.push(`→ ${p.status}`);
  if (p.duration_ms !== undefined && e.event !== 'slow_request') parts.push(duration(Number(p.duration_ms)));
  if (p.error_type) parts.push(p.error_type);
  if (p.error_message) parts.push(`“${String(p.error_message).slice(0, 140)}”`);
  if (e.event === '$exception') {
    const first = p.$exception_list?.[0];
    if (first) parts.push(`${first.type ?? ''}: ${String(first.value ?? '').slice(0, 140)}`);
  }
  if (e.event === '$pageview' && p.$pathname) parts.push(p.$pathname);
  if (e.event === '$identify' && p.$anon_distinct_id) parts.push(`was ${shortId(String(p.$anon_distinct_id))}`);
  return parts.join('  ');
}

const markerClass = (e) => (e.event === 'slow_request' ? 'slow' : Number(e.properties.status_code) >= 500 || e.event === '$exception' ? 'error' : 'client');

function EventLabel({ e }) {
  return html`<span class=${`tag ${e.source}`}>${e.source === 'frontend' ? 'web' : 'api'}</span> <strong class="event-name">${e.event}</strong>`;
}

function Properties({ e }) {
  return html`<details class="props"><summary>properties</summary><pre>${JSON.stringify(e.properties, null, 2)}</pre></details>`;
}

function EventRow({ e, group, kind }) {
  const t = Date.parse(e.timestamp);
  const isBar = group.bar && e === group.apiRequest;
  const p = e.properties;
  const marks = group.bar ? null : e.event === 'api_error' || e.event === '$exception' ? 'is-error' : e.event === 'slow_request' ? 'is-slow' : '';
  return html`<li class=${`event-row ${e.source} ${marks ?? ''} ${isBar ? 'call' : ''}`} data-source=${e.source} data-event=${e.event} data-uuid=${e.uuid}>
    <div class="label">
      <span class="when" title=${e.timestamp}>${clock(e.timestamp)}</span>
      <${EventLabel} e=${e} />
      ${isBar
        ? html` <span class="call-what"><code>${p.method} ${p.endpoint}</code> <${Status} code=${p.status_code} errorType=${group.markers.find((m) => m.event === 'api_error')?.properties.error_type} /> <span class="nowrap">${ms(group.bar.duration)}</span></span>`
        : html` <span class="what">${eventSummary(e)}</span>`}
      ${kind !== 'distinct_id' && e.distinct_id && e.distinct_id !== group.user ? html` <${IdLink} kind="distinct_id" value=${e.distinct_id} />` : null}
      <${Properties} e=${e} />
    </div>
    <div class="track" aria-hidden=${isBar ? 'false' : 'true'}>
      ${isBar
        ? html`<div
            class=${`bar ${statusClass(p.status_code)}`}
            style=${{ left: `${position(group, group.bar.start)}%`, width: `${Math.max(0.8, position(group, group.bar.end) - position(group, group.bar.start))}%` }}
            title=${`${p.method} ${p.endpoint} → ${p.status_code}, ${ms(group.bar.duration)}`}
          >
            ${group.markers.map(
              (m) =>
                html`<span
                  key=${m.uuid}
                  class=${`marker ${markerClass(m)}`}
                  data-event=${m.event}
                  style=${{ left: `${Math.min(100, Math.max(0, ((Date.parse(m.timestamp) - group.bar.start) / Math.max(1, group.bar.end - group.bar.start)) * 100))}%` }}
                  title=${`${m.event} ${eventSummary(m)} (${clock(m.timestamp)})`}
                ></span>`,
            )}
          </div>`
        : html`<span class=${`dot ${e.source}`} style=${{ left: `${position(group, t)}%` }}></span>`}
    </div>
  </li>`;
}

function Marker({ m }) {
  return html`<li class=${`marker-row ${markerClass(m)}`} data-source="backend" data-event=${m.event} data-uuid=${m.uuid}>
    <div class="label">
      <span class="when" title=${m.timestamp}>${clock(m.timestamp)}</span>
      <span class=${`tag ${markerClass(m)}`}>${m.event}</span> <span class="what">${eventSummary(m)}</span>
      ${m.event === '$exception' ? html` <a href=${href('issues', { q: m.properties.request_id ?? '' })}>issue →</a>` : null}
      <${Properties} e=${m} />
    </div>
  </li>`;
}

function Group({ group, kind }) {
  const first = group.rows[0] ?? group.markers[0];
  const click = group.rows.find((e) => e.source === 'frontend' && e.properties.button_name);
  const hasError = group.markers.some((m) => m.event === 'api_error' || m.event === '$exception');
  const title = click ? `“${click.properties.button_name}”` : first.event;
  // The person is named once, in the header; a row names its own only when it differs (an anonymous id before sign-up).
  if (group.requestId) group.user = (group.apiRequest ?? first).distinct_id;
  return html`<li class=${`group ${hasError ? 'has-error' : ''} ${group.bar ? 'is-call' : 'is-lone'}`} data-request-id=${group.requestId ?? undefined} key=${group.key}>
    ${group.requestId
      ? html`<header>
          <strong>${title}</strong>
          ${group.apiRequest ? html` <code>${group.apiRequest.properties.method} ${group.apiRequest.properties.endpoint}</code> <${Status} code=${group.apiRequest.properties.status_code} />` : null}
          <span class="muted nowrap"> · ${duration(group.end - group.start)}</span>
          ${kind !== 'distinct_id' && group.user ? html` <${IdLink} kind="distinct_id" value=${group.user} />` : null}
          ${kind !== 'request_id' ? html` <${IdLink} kind="request_id" value=${group.requestId} />` : html` <${CopyButton} text=${group.requestId} label="request id" />`}
        </header>`
      : null}
    <ol class="rows">
      ${group.rows.map((e) => html`<${EventRow} key=${e.uuid} e=${e} group=${group} kind=${kind} />`)}
      ${group.bar ? group.markers.map((m) => html`<${Marker} key=${m.uuid} m=${m} />`) : null}
    </ol>
  </li>`;
}

function JourneyPage({ route, tick }) {
  const { params } = route;
  const kind = KINDS.map(([k]) => k).find((k) => params.get(k));
  const value = kind ? params.get(kind) : '';
  const [draft, setDraft] = useState({ kind: kind ?? 'request_id', value });
  const shown = useRef(route.key);
  useEffect(() => {
    if (shown.current !== route.key) {
      shown.current = route.key;
      setDraft({ kind: kind ?? 'request_id', value });
    }
  }, [route.key]);
  const { data, error } = useApi(kind ? 'journey' : null, kind ? { [kind]: value } : null, tick);
  const groups = useMemo(() => (data ? groupJourney(data.events) : []), [data]);
  const frontend = data ? data.events.filter((e) => e.source === 'frontend').length : 0;
  return html`<section id="page-journey">
    <form
      id="journey-form"
      class="filters"
      onSubmit=${(e) => {
        e.preventDefault();
        if (draft.value.trim()) go('journey', { [draft.kind]: draft.value.trim() });
      }}
    >
      <select name="kind" value=${draft.kind} onChange=${(e) => setDraft((d) => ({ ...d, kind: e.currentTarget.value }))}>
        ${KINDS.map(([k, l]) => html`<option value=${k}>${l}</option>`)}
      </select>
      <input name="value" value=${draft.value} placeholder="a request id, user or session" size="40" required spellcheck=${false} onInput=${(e) => setDraft((d) => ({ ...d, value: e.currentTarget.value }))} />
      <button type="submit">Show journey</button>
    </form>
    <${ErrorBanner} error=${error} />
    ${!kind
      ? html`<${Empty}>Enter a request id, a user or a session, or click one in any table.<//>`
      : !data
        ? html`<p class="muted">Loading…</p>`
        : data.events.length === 0
          ? html`<p class="empty muted" id="journey-summary">No events for ${kind} <code>${value}</code> yet. This page is live: they appear as they arrive.</p>`
          : html`<p id="journey-summary">
                ${data.events.length} events${data.truncated ? ' (the latest)' : ''}: ${frontend} from the frontend, ${data.events.length - frontend} from the backend, in ${groups.length}
                ${groups.length === 1 ? ' action' : ' actions'} over ${duration(Date.parse(data.events[data.events.length - 1].timestamp) - Date.parse(data.events[0].timestamp))}.${' '}
                <span class="muted">Live: new events appear as they arrive.</span>
              </p>
              <ol id="timeline" class="waterfall">
                ${groups.flatMap((g, i) => {
                  const gap = i > 0 ? g.start - groups[i - 1].end : 0;
                  return [
                    gap > 1000 ? html`<li class="gap" key=${`gap-${g.key}`} aria-label="time passes">${duration(gap)} later</li>` : null,
                    html`<${Group} key=${g.key} group=${g} kind=${kind} />`,
                  ];
                })}
              </ol>`}
  </section>`;
}

// ----- Issues ---------------------------------------------------------------------------------

function IssueTable({ issues, id, kind }) {
  const { sorted, th } = useSort(issues, 'last_seen', 'desc');
  if (issues.length === 0) return html`<${Empty}>None in this range.<//>`;
  return html`<div class="table-wrap">
    <table class="data issues" id=${id}>
      <thead>
        <tr>
          ${th('exception_type', 'Issue')} ${th('count', 'Events', true)} ${th('users', 'Users', true)}
          <th class="wide-only">Trend</th>
          ${th('first_seen', 'First seen')} ${th('last_seen', 'Last seen')}
        </tr>
      </thead>
      <tbody>
        ${sorted.map(
          (i) => html`<tr key=${i.id} data-issue=${i.id} class=${kind === '5xx' ? 'is-error' : 'is-client-error'}>
            <td class="issue-cell">
              <a class="issue-link" href=${`#issue/${i.id}`}><strong>${i.exception_type}</strong></a>
              <span class="issue-message">${i.message ?? ''}</span>
              <span class="muted small">
                ${i.top_frame ? html`<code>${i.top_frame.function ?? '?'}</code> in <code>${i.top_frame.file}${i.top_frame.lineno ? `:${i.top_frame.lineno}` : ''}</code> · ` : null}
                ${i.endpoints.slice(0, 2).join(', ')}${i.endpoints.length > 2 ? ` +${i.endpoints.length - 2}` : ''} ${i.status_codes.length ? `· ${i.status_codes.join(', ')}` : ''}
                ${i.error_types.length ? html` · <span class=${`tag ${kind === '5xx' ? 'error' : 'client'}`}>${i.error_types.join(', ')}</span>` : null}
              </span>
            </td>
            <td class="num">${i.count}</td>
            <td class="num">${i.users}</td>
            <td class="wide-only"><${Sparkline} values=${i.sparkline} kind=${kind} /></td>
            <td class="nowrap" title=${i.first_seen}>${ago(i.first_seen)}</td>
            <td class="nowrap" title=${i.last_seen}>${ago(i.last_seen)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

function IssuesPage({ route, tick }) {
  const { params } = route;
  const { data, error } = useApi('issues', params, tick);
  return html`<section id="page-issues">
    <${Filters} page="issues" params=${params} fields=${['q', 'user', 'endpoint', 'status', 'error_type']} />
    <${ErrorBanner} error=${error} />
    ${!data
      ? html`<p class="muted">Loading…</p>`
      : data.server.length + data.client.length === 0 && hasFilters(params)
        ? html`<${NoMatch} page="issues" />`
        : html`<p class="hint muted">Grouped by exception type and the top frame of your own code, as PostHog Error Tracking and Sentry group them. Trend: ${dateTime(data.spark_from)} to ${dateTime(data.spark_to)}.</p>
            <h2>Server errors <span class="muted">(5xx and exceptions)</span></h2>
            <${IssueTable} issues=${data.server} id="issues-server" kind="5xx" />
            <h2>Client errors <span class="muted">(4xx)</span></h2>
            <${IssueTable} issues=${data.client} id="issues-client" kind="4xx" />`}
  </section>`;
}

function Frame({ f, index }) {
  const lines = [];
  if (f.pre_context) f.pre_context.forEach((line, i) => lines.push([f.lineno - f.pre_context.length + i, line, false]));
  if (f.context_line) lines.push([f.lineno, f.context_line, true]);
  if (f.post_context) f.post_context.forEach((line, i) => lines.push([f.lineno + 1 + i, line, false]));
  return html`<li class=${`frame ${f.in_app ? 'in-app' : 'library'}`} data-in-app=${String(f.in_app)}>
    <details open=${f.in_app && index < 3}>
      <summary>
        <code class="fn">${f.function ?? '<anonymous>'}</code> <span class="muted">in</span> <code class="file" title=${f.filename ?? ''}>${f.filename ?? '?'}</code
        >${f.lineno ? html`<span class="muted">:${f.lineno}${f.colno ? `:${f.colno}` : ''}</span>` : null} ${f.in_app ? html`<span class="tag in-app">in app</span>` : null}
      </summary>
      ${lines.length
        ? html`<pre class="context">${lines.map(([n, line, current]) => html`<span class=${current ? 'current' : ''}><span class="ln">${n}</span>${line}\n</span>`)}</pre>`
        : html`<p class="muted small">No source context was sent for this frame.</p>`}
    </details>
  </li>`;
}

function IssuePage({ route, tick, links }) {
  const { data, error } = useApi(`issues/${encodeURIComponent(route.arg ?? '')}`, filterParams(route.params), tick);
  const [showLibrary, setShowLibrary] = useState(false);
  const back = href('issues', filterParams(route.params));
  if (!data) return html`<section id="page-issue"><p><a href=${back}>← Issues</a></p><${ErrorBanner} error=${error} />${error ? null : html`<p class="muted">Loading…</p>`}</section>`;
  const frames = [...data.frames].reverse(); // most recent call first, as Sentry shows them
  const visible = showLibrary ? frames : frames.filter((f) => f.in_app);
  return html`<section id="page-issue" data-issue=${data.id}>
    <p><a href=${back}>← Issues</a></p>
    <${ErrorBanner} error=${error} />
    <header class="issue-head">
      <h2><span class=${`tag ${data.kind === '5xx' ? 'error' : 'client'}`}>${data.kind}</span> ${data.exception_type}</h2>
      <p class="issue-message">${data.message ?? ''}</p>
      <dl class="stats">
        <div><dt>Events</dt><dd>${data.count}</dd></div>
        <div><dt>Users</dt><dd>${data.users}</dd></div>
        <div><dt>First seen</dt><dd title=${data.first_seen}>${ago(data.first_seen)}</dd></div>
        <div><dt>Last seen</dt><dd title=${data.last_seen}>${ago(data.last_seen)}</dd></div>
        <div><dt>Trend</dt><dd><${Sparkline} values=${data.sparkline} width=${180} height=${32} kind=${data.kind} /></dd></div>
      </dl>
      <p class="muted small">Fingerprint: <code>${data.fingerprint.join(' · ')}</code> · ${data.endpoints.join(', ')}</p>
    </header>
    <h3>Stack trace <span class="muted small">(most recent call first; from the latest event)</span></h3>
    ${frames.length
      ? html`<ol class="frames" id="frames">
            ${visible.map((f, i) => html`<${Frame} key=${`${i}-${f.filename}-${f.lineno}`} f=${f} index=${i} />`)}
          </ol>
          ${frames.length > visible.length || showLibrary
            ? html`<button type="button" class="secondary" onClick=${() => setShowLibrary((s) => !s)}>
                ${showLibrary ? 'Only my code' : `Show ${frames.length - visible.length} library and Node frames`}
              </button>`
            : null}`
      : data.traceback
        ? html`<pre class="traceback">${data.traceback}</pre>`
        : html`<${Empty}>No stack trace was sent (a client error carries none).<//>`}
    <h3>Events <span class="muted small">(the latest ${data.occurrences.length})</span></h3>
    <div class="table-wrap">
      <table class="data" id="occurrences">
        <thead>
          <tr>
            <th>Time</th><th>Endpoint</th><th>Status</th><th>User</th><th>Journey</th><th class="wide-only">$exception</th><th class="wide-only">Sentry</th>
          </tr>
        </thead>
        <tbody>
          ${data.occurrences.map(
            (o) => html`<tr key=${o.uuid}>
              <td class="nowrap" title=${o.timestamp}>${dateTime(o.timestamp)}</td>
              <td>${o.endpoint ? html`<code>${o.method} ${o.endpoint}</code>` : html`<span class="muted">outside a request</span>`}</td>
              <td class="nowrap"><${Status} code=${o.status_code} errorType=${o.error_type} /></td>
              <td><${IdLink} kind="distinct_id" value=${o.distinct_id} /></td>
              <td>${o.request_id ? html`<${IdLink} kind="request_id" value=${o.request_id} />` : html`<${IdLink} kind="session_id" value=${o.session_id} />`}</td>
              <td class="wide-only"><${ExternalId} value=${o.exception_uuid} template=${links?.posthog_event} label="PostHog event" /></td>
              <td class="wide-only"><${ExternalId} value=${o.sentry_event_id} template=${links?.sentry_event} label="Sentry event" /></td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
    ${!links?.posthog_event || !links?.sentry_event
      ? html`<p class="muted small">Set ${!links?.posthog_event ? html`<code>EXPLORER_POSTHOG_URL</code> (a project, e.g. https://us.posthog.com/project/12345)` : null}
          ${!links?.posthog_event && !links?.sentry_event ? ' and ' : null}${!links?.sentry_event ? html`<code>EXPLORER_SENTRY_URL</code> (e.g. https://my-org.sentry.io)` : null} to link these ids out.</p>`
      : null}
  </section>`;
}

// ----- Performance ----------------------------------------------------------------------------

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** A Chart.js chart that is updated in place (no flicker, no lost tooltip) when its data changes. */
function ChartBox({ id, config, caption, empty }) {
  const canvas = useRef(null);
  const chart = useRef(null);
  useEffect(() => () => chart.current?.destroy(), []);
  useEffect(() => {
    if (!window.Chart || !canvas.current || empty) return;
    window.Chart.defaults.color = css('--muted');
    window.Chart.defaults.borderColor = css('--line');
    if (chart.current && chart.current.config.type === config.type) {
      chart.current.data = config.data;
      chart.current.options = { animation: false, maintainAspectRatio: false, ...config.options };
      chart.current.update('none');
    } else {
      chart.current?.destroy();
      chart.current = new window.Chart(canvas.current, { ...config, options: { animation: false, maintainAspectRatio: false, ...config.options } });
    }
  });
  return html`<figure>
    <figcaption>${caption}</figcaption>
    ${empty ? html`<p class="muted chart-empty">No requests in this range.</p>` : html`<div class="chart"><canvas id=${id} ref=${canvas}></canvas></div>`}
  </figure>`;
}

const PCT = [
  ['p50_ms', 'p50', '--green'],
  ['p95_ms', 'p95', '--amber'],
  ['p99_ms', 'p99', '--red'],
];

function PerformancePage({ route, tick }) {
  const { params } = route;
  const { data, error } = useApi('performance', params, tick);
  const rows = useMemo(() => data?.endpoints.map((r) => ({ ...r, name: `${r.method} ${r.endpoint}` })), [data]);
  const { sorted, th } = useSort(rows, 'requests', 'desc');
  const percent = (rate) => `${Math.round(rate * 1000) / 10} %`;
  const empty = !data || data.endpoints.length === 0;
  return html`<section id="page-performance">
    <${Filters} page="performance" params=${params} fields=${['user', 'endpoint', 'status', 'error_type']} exact=${true} />
    <${ErrorBanner} error=${error} />
    ${data
      ? html`<div class="charts">
            <${ChartBox}
              id="latency-by-endpoint"
              caption="Latency percentiles by endpoint"
              empty=${empty}
              config=${{
                type: 'bar',
                data: {
                  labels: data.endpoints.map((r) => `${r.method} ${r.endpoint}`),
                  datasets: PCT.map(([key, label, color]) => ({ label, backgroundColor: css(color), data: data.endpoints.map((r) => r[key]), barPercentage: 0.9, categoryPercentage: 0.8, maxBarThickness: 14 })),
                },
                // Logarithmic: a slow endpoint would otherwise flatten every other bar.
                options: {
                  indexAxis: 'y',
                  scales: { x: { type: 'logarithmic', title: { display: true, text: 'ms (log scale)' } }, y: { ticks: { autoSkip: false, font: { family: 'ui-monospace, monospace', size: 11 } } } },
                },
              }}
            />
            <${ChartBox}
              id="latency-over-time"
              caption="Latency over time"
              empty=${empty}
              config=${{
                type: 'line',
                data: {
                  labels: data.over_time.map((r) => (data.bucket_ms >= 3_600_000 ? dateTime(r.bucket) : clock(r.bucket).slice(0, data.bucket_ms >= 60_000 ? 5 : 8))),
                  datasets: PCT.map(([key, label, color]) => ({
                    label,
                    borderColor: css(color),
                    backgroundColor: css(color),
                    data: data.over_time.map((r) => r[key]),
                    spanGaps: true,
                    pointRadius: data.over_time.length > 30 ? 0 : 2,
                    borderWidth: 2,
                    tension: 0.2,
                  })),
                },
                options: { scales: { y: { beginAtZero: true, title: { display: true, text: 'ms' } }, x: { ticks: { maxRotation: 0, autoSkipPadding: 12 } } }, interaction: { mode: 'index', intersect: false } },
              }}
            />
          </div>
          ${empty
            ? hasFilters(params)
              ? html`<${NoMatch} page="performance" />`
              : html`<${Empty}>No API requests yet.<//>`
            : html`<div class="table-wrap">
                <table id="performance-table" class="data">
                  <thead>
                    <tr>
                      ${th('name', 'Endpoint')} ${th('requests', 'Requests', true)} ${th('error_rate', '5xx', true)} ${th('client_error_rate', '4xx', true)}
                      ${th('p50_ms', 'p50', true)} ${th('p95_ms', 'p95', true)} ${th('p99_ms', 'p99', true)} ${th('slow_requests', 'Slow', true)}
                    </tr>
                  </thead>
                  <tbody>
                    ${sorted.map(
                      (r) => html`<tr key=${r.name} data-endpoint=${r.endpoint}>
                        <td><a href=${href('requests', { endpoint: r.endpoint, since: params.get('since') ?? '' })} title="This endpoint's requests">${r.method} <code>${r.endpoint}</code></a></td>
                        <td class="num">${r.requests}</td>
                        <td class=${`num ${r.error_rate > 0 ? 'bad' : ''}`}>${percent(r.error_rate)}</td>
                        <td class=${`num ${r.client_error_rate > 0 ? 'warn' : ''}`}>${percent(r.client_error_rate)}</td>
                        <td class="num">${ms(r.p50_ms)}</td>
                        <td class="num">${ms(r.p95_ms)}</td>
                        <td class="num">${ms(r.p99_ms)}</td>
                        <td class=${`num ${r.slow_requests > 0 ? 'warn' : ''}`}>
                          ${r.slow_requests > 0 ? html`<a href=${href('requests', { endpoint: r.endpoint, sort: 'latency' })}>${r.slow_requests}</a>` : 0}
                        </td>
                      </tr>`,
                    )}
                  </tbody>
                </table>
              </div>`}`
      : html`<p class="muted">Loading…</p>`}
  </section>`;
}

// ----- Frame ----------------------------------------------------------------------------------

function TrafficButton() {
  const [label, setLabel] = useState('Generate traffic');
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    setLabel('Generating…');
    try {
      const response = await fetch('/api/demo-traffic', { method: 'POST', headers: { 'X-Requested-With': 'explorer' } }); // not a simple request: see the explorer's CSRF guard
      setLabel(response.ok ? 'Traffic started' : 'The demo did not answer');
    } catch {
      setLabel('The explorer did not answer');
    }
    setTimeout(() => {
      setBusy(false);
      setLabel('Generate traffic');
    }, 3000);
  };
  return html`<button id="traffic" type="button" disabled=${busy} onClick=${run}>${label}</button>`;
}

function App() {
  const route = useRoute();
  const live = useLive();
  const summary = useApi('summary', null, live.tick);
  const s = summary.data;
  useEffect(() => {
    document.body.dataset.loaded = route.page === 'issue' ? 'issue' : route.page;
  });
  const nav = [
    ['requests', 'Requests'],
    ['journey', 'Journey'],
    ['issues', 'Issues'],
    ['performance', 'Performance'],
  ];
  const active = route.page === 'issue' ? 'issues' : route.page;
  const Page = { requests: RequestsPage, journey: JourneyPage, issues: IssuesPage, issue: IssuePage, performance: PerformancePage }[route.page];
  return html`<header class="top">
      <h1><a href="#requests">Journey explorer</a></h1>
      <nav>${nav.map(([p, label]) => html`<a href=${`#${p}`} data-page=${p} class=${active === p ? 'active' : ''} aria-current=${active === p ? 'page' : undefined}>${label}</a>`)}</nav>
      <div id="summary" class="muted">
        ${s
          ? `${s.events} events · ${s.requests} requests · ${s.errors} errors · ${s.frontend_events} from browsers · ${s.users} users`
          : summary.error
            ? html`<span class="api-error">Could not reach the explorer: ${summary.error}</span>`
            : ''}
      </div>
      <button type="button" id="live" class=${`live ${live.paused ? 'paused' : live.state}`} onClick=${live.toggle} title="Pages reload when events arrive; pause to hold this view">
        ${live.paused ? '❚❚ paused' : live.state === 'live' ? '● live' : '○ reconnecting'}
      </button>
      ${s?.demo_traffic ? html`<${TrafficButton} />` : null}
    </header>
    <main>
      ${s && s.events === 0 && route.page !== 'journey' ? html`<${GetStarted} demo=${s.demo_traffic} />` : null}
      <${Page} key=${route.page === 'issue' ? `issue-${route.arg}` : route.page} route=${route} tick=${live.tick} links=${s?.links} />
    </main>`;
}

render(html`<${App} />`, document.getElementById('app'));

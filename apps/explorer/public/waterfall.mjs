// A journey's events as user actions: every event of one request_id in one group
// (the click, the API call as a bar, its slow_request / api_error / $exception as
// markers on the bar, the outcome event), events without a request id on their own,
// groups in time order. Pure functions: no DOM here.

/** Backend events drawn as markers on their request's bar rather than as rows. */
export const MARKER_EVENTS = new Set(['slow_request', 'api_error', '$exception']);

const at = (e) => Date.parse(e.timestamp);

/** The request's span: `api_request` is stamped when the response has gone out, `response_time_ms` before that. */
function barOf(apiRequest) {
  if (!apiRequest) return null;
  const end = at(apiRequest);
  const duration = Number(apiRequest.properties.response_time_ms);
  return { start: Number.isFinite(duration) ? end - duration : end, end, duration: Number.isFinite(duration) ? duration : null };
}

/**
 * Groups a journey (events in time order) into user actions.
 * Each group: { key, requestId, start, end, bar, apiRequest, markers, rows } where rows are the
 * non-marker events in the order a person reads them: what the page did before the call, the call,
 * what the API did, then what the page did after (its outcome event sorts after the call even
 * when its clock put it a millisecond before `api_request`'s stamp).
 */
export function groupJourney(events) {
  const byRequest = new Map();
  const groups = [];
  for (const e of events) {
    const requestId = typeof e.properties?.request_id === 'string' && e.properties.request_id !== '' ? e.properties.request_id : null;
    if (requestId && byRequest.has(requestId)) {
      byRequest.get(requestId).events.push(e);
      continue;
    }
    const group = { key: requestId ? `r:${requestId}` : `e:${e.uuid}`, requestId, events: [e] };
    if (requestId) byRequest.set(requestId, group);
    groups.push(group);
  }
  const out = groups.map((g) => {
    const apiRequest = g.events.find((e) => e.event === 'api_request' && e.source === 'backend') ?? null;
    const bar = barOf(apiRequest);
    const markers = g.events.filter((e) => MARKER_EVENTS.has(e.event) && e.source === 'backend');
    const rest = g.events.filter((e) => e !== apiRequest && !markers.includes(e));
    const before = bar ? rest.filter((e) => e.source === 'frontend' && at(e) <= bar.start) : rest;
    const backend = bar ? rest.filter((e) => e.source === 'backend') : [];
    const after = bar ? rest.filter((e) => e.source === 'frontend' && at(e) > bar.start) : [];
    const rows = [...before, ...(apiRequest ? [apiRequest] : []), ...backend, ...after];
    const times = g.events.map(at).concat(bar ? [bar.start, bar.end] : []);
    // Markers can land seconds later (a $exception is sent after the answer); the group's span is the call's.
    const spanTimes = bar ? times.filter((t, i) => i >= g.events.length || !MARKER_EVENTS.has(g.events[i].event)) : times;
    const start = Math.min(...spanTimes);
    const end = Math.max(...spanTimes);
    return { key: g.key, requestId: g.requestId, start, end, bar, apiRequest, markers, rows, events: g.events };
  });
  return out.sort((a, b) => a.start - b.start);
}

/** Where `t` falls in a group's span, in percent (clamped). */
export function position(group, t) {
  const span = Math.max(group.end - group.start, 1);
  return Math.min(100, Math.max(0, ((t - group.start) / span) * 100));
}

/** A duration a person reads: 850 ms, 1.6 s, 2 min 5 s. */
export function duration(ms) {
  if (!Number.isFinite(ms)) return '—';
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(ms)} ms`;
  if (abs < 60_000) return `${(ms / 1000).toFixed(abs < 10_000 ? 1 : 0)} s`;
  if (abs < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

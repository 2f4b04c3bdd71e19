import { EventStore } from './event-store.js';
import type { IngestedEvent } from './ingestion-decoder.js';
import { fingerprint, IssueQueries, parseStack, topFrame } from './issues.queries.js';
import { RequestSearchQueries } from './request-search.queries.js';

const T0 = Date.parse('2026-11-23T10:00:00.000Z');
let counter = 0;
const ev = (event: string, distinctId: string, ts: number, properties: Record<string, unknown>): IngestedEvent => ({
  uuid: `00000000-0000-4000-8000-${String(++counter).padStart(12, '0')}`,
  event,
  distinct_id: distinctId,
  timestampMs: ts,
  properties,
});

const stack = (fn: string, line: number) =>
  [
    'Error: You exceeded your current quota',
    `    at ${fn} (file:///app/dist/apps/demo/src/demo.controllers.js:${line}:15)`,
    '    at file:///app/node_modules/@nestjs/core/router/router-execution-context.js:61:37',
    '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
  ].join('\n');

/** A failing request: its api_request, api_error and (for a 5xx) the $exception the module sends after it. */
function failing(
  user: string,
  ts: number,
  endpoint: string,
  status: number,
  exceptionType: string,
  fn: string,
  line: number,
): IngestedEvent[] {
  const requestId = `req-${++counter}`;
  const out = [
    ev('api_request', user, ts, { request_id: requestId, endpoint, method: 'GET', status_code: status, response_time_ms: 5 }),
    ev('api_error', user, ts + 1, {
      request_id: requestId,
      endpoint,
      method: 'GET',
      status_code: status,
      error_type: status < 500 ? 'client_error' : 'quota_error',
      exception_type: exceptionType,
      error_message: 'boom',
      traceback: stack(fn, line),
    }),
  ];
  if (status >= 500) {
    out.push(
      ev('$exception', user, ts + 30, {
        request_id: requestId,
        $exception_list: [
          {
            type: exceptionType,
            value: 'boom',
            stacktrace: {
              frames: [
                {
                  filename: '/app/node_modules/@nestjs/core/router/router-execution-context.js',
                  function: 'anonymous',
                  lineno: 61,
                  in_app: false,
                },
                {
                  filename: '/app/dist/apps/demo/src/demo.controllers.js',
                  function: fn,
                  lineno: line,
                  colno: 15,
                  in_app: true,
                  context_line: '    throw boom();',
                  pre_context: ['  quota() {'],
                  post_context: ['  }'],
                },
              ],
            },
          },
        ],
      }),
    );
  }
  return out;
}

describe('issues', () => {
  it('parses a V8 stack into frames, most recent last, and finds the top in-app frame', () => {
    const frames = parseStack(stack('DemoController.quotaError', 42));
    expect(frames.map((f) => f.in_app)).toEqual([false, false, true]);
    expect(topFrame(frames)).toMatchObject({ function: 'DemoController.quotaError', lineno: 42, colno: 15 });
  });

  it('fingerprints by exception type and top in-app frame, not the line, and never mixes 4xx with 5xx', () => {
    const base = { exception_type: 'Error', method: 'GET', endpoint: '/a', status_code: 500 };
    const a = fingerprint({ ...base, frames: parseStack(stack('f', 10)) });
    expect(fingerprint({ ...base, frames: parseStack(stack('f', 99)) }).id).toBe(a.id);
    expect(fingerprint({ ...base, frames: parseStack(stack('g', 10)) }).id).not.toBe(a.id);
    expect(fingerprint({ ...base, exception_type: 'TypeError', frames: parseStack(stack('f', 10)) }).id).not.toBe(a.id);
    expect(fingerprint({ ...base, status_code: 400, frames: parseStack(stack('f', 10)) }).id).not.toBe(a.id);
  });

  it('groups errors into issues with counts, users, first and last seen, a sparkline and frames with source context', async () => {
    const store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 100_000 });
    try {
      await store.insert([
        ...failing('ann', T0, '/errors/quota', 500, 'Error', 'DemoController.quotaError', 40),
        ...failing('bob', T0 + 60_000, '/errors/quota', 500, 'Error', 'DemoController.quotaError', 40),
        ...failing('ann', T0 + 120_000, '/errors/quota', 500, 'Error', 'DemoController.quotaError', 41),
        ...failing('cat', T0 + 30_000, '/items', 400, 'BadRequestException', 'DemoController.create', 70),
        // An exception outside any request (a job): an issue of its own.
        ev('$exception', 'server', T0 + 90_000, {
          $exception_list: [
            {
              type: 'RangeError',
              value: 'job failed',
              stacktrace: { frames: [{ filename: '/app/dist/jobs.js', function: 'nightly', lineno: 3, in_app: true }] },
            },
          ],
        }),
      ]);
      const issues = new IssueQueries(store);
      const { server, client } = await issues.issues({});
      expect(server.map((i) => [i.exception_type, i.count, i.users])).toEqual([
        ['Error', 3, 2],
        ['RangeError', 1, 1],
      ]);
      expect(client.map((i) => [i.exception_type, i.count, i.kind])).toEqual([['BadRequestException', 1, '4xx']]);
      const quota = server[0];
      expect(quota).toMatchObject({
        first_seen: new Date(T0 + 1).toISOString(),
        last_seen: new Date(T0 + 120_001).toISOString(),
        top_frame: { function: 'DemoController.quotaError' },
      });
      expect(quota.sparkline.reduce((a, b) => a + b, 0)).toBe(3);

      const detail = (await issues.issue(quota.id, {}))!;
      expect(detail.occurrences).toHaveLength(3);
      expect(detail.occurrences[0]).toMatchObject({ distinct_id: 'ann', status_code: 500, endpoint: '/errors/quota' });
      expect(detail.occurrences.every((o) => o.request_id?.startsWith('req-') && o.exception_uuid)).toBe(true);
      // The $exception's frames, with their source lines, rather than the parsed traceback.
      expect(detail.frames.at(-1)).toMatchObject({ in_app: true, context_line: '    throw boom();', pre_context: ['  quota() {'] });
      expect(await issues.issue('nope', {})).toBeUndefined();
      expect((await issues.issues({}, 'badrequest')).client).toHaveLength(1);
      expect((await issues.issues({ user: 'bo' })).server.map((i) => i.count)).toEqual([1]);
    } finally {
      await store.close();
    }
  });

  it('searches requests by substring, sorts and pages them', async () => {
    const store = await EventStore.open(':memory:', { retentionDays: 0, maxEvents: 100_000 });
    try {
      const rows = [];
      for (let i = 0; i < 30; i += 1) {
        rows.push(
          ev('api_request', i % 2 ? 'user_odd' : 'user_even', T0 + i * 1000, {
            request_id: `myapp-orders-${i}`,
            endpoint: i % 3 ? '/orders/:id' : '/chat',
            method: 'GET',
            status_code: i === 7 ? 503 : 200,
            response_time_ms: i,
          }),
        );
      }
      rows.push(ev('chat_message_sent', 'user_even', T0, { request_id: 'myapp-orders-0' }));
      await store.insert(rows);
      const search = new RequestSearchQueries(store);
      const page = await search.search({}, { limit: 10, offset: 10 });
      expect(page).toMatchObject({ total: 30, offset: 10, limit: 10 });
      expect(page.requests[0].request_id).toBe('myapp-orders-19');
      expect((await search.search({ endpoint: 'order' }, {})).total).toBe(20);
      expect((await search.search({ user: 'ODD' }, {})).total).toBe(15);
      expect((await search.search({}, { q: 'orders-2' })).requests.map((r) => r.request_id).sort()).toEqual(
        ['myapp-orders-2', ...Array.from({ length: 10 }, (_, i) => `myapp-orders-2${i}`)].sort(),
      );
      expect((await search.search({}, { q: 'message_sent' })).requests.map((r) => r.request_id)).toEqual(['myapp-orders-0']);
      expect((await search.search({}, { q: '100%_' })).total).toBe(0);
      expect((await search.search({}, { sort: 'latency', dir: 'desc', limit: 1 })).requests[0].response_time_ms).toBe(29);
      expect((await search.search({ status: '5xx' }, {})).requests.map((r) => r.request_id)).toEqual(['myapp-orders-7']);
    } finally {
      await store.close();
    }
  });
});

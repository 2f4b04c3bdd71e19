/**
 * Journey explorer benchmark: how fast it stores events and answers its pages'
 * queries as its table grows. The explorer runs in this process on 127.0.0.1
 * with a DuckDB file in a temporary folder; batches of 100 `api_request`
 * events (gzip, as posthog-node and the module send them) arrive 4 at a time.
 * After each stage the JSON API's queries are timed.
 *
 *   npm run bench:explorer                       # stages of 50 000 events up to 200 000
 *   BENCH_STAGES=3 BENCH_STAGE_EVENTS=100000 npm run bench:explorer
 *   BENCH_MAX_EVENTS=100000 BENCH_STAGES=6 npm run bench:explorer   # retention: the file stops growing
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startExplorer } from '../apps/explorer/src/create-explorer-app.js';

const STAGES = Number(process.env.BENCH_STAGES ?? 4);
const STAGE_EVENTS = Number(process.env.BENCH_STAGE_EVENTS ?? 50_000);
const BATCH = 100;
const CONCURRENCY = 4;
const ENDPOINTS = ['/items/:id', '/chat', '/me', '/auth/signup', '/slow', '/errors/quota'];

function batch(): Buffer {
  const events = Array.from({ length: BATCH }, (_, i) => {
    const failed = Math.random() < 0.05;
    return {
      uuid: randomUUID(),
      event: failed ? 'api_error' : 'api_request',
      distinct_id: `user_${Math.floor(Math.random() * 500)}`,
      timestamp: new Date().toISOString(),
      properties: {
        request_id: randomUUID(),
        $session_id: `session_${Math.floor(Math.random() * 2000)}`,
        endpoint: ENDPOINTS[i % ENDPOINTS.length],
        method: 'GET',
        status_code: failed ? 500 : 200,
        response_time_ms: Math.round(Math.random() ** 3 * 200_000) / 100,
        error_type: failed ? 'application_error' : undefined,
        environment: 'bench',
        user_id: 'x',
      },
    };
  });
  return gzipSync(JSON.stringify({ api_key: 'phc_bench', batch: events }));
}

const dir = mkdtempSync(join(tmpdir(), 'explorer-bench-'));
const settings = {
  port: 0,
  host: '127.0.0.1',
  dbPath: join(dir, 'events.duckdb'),
  retentionDays: 0,
  maxEvents: Number(process.env.BENCH_MAX_EVENTS ?? 10_000_000),
  maxBodyBytes: 5 * 1024 * 1024,
};
const { app, url } = await startExplorer(settings, false);
const size = () => readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
const time = async (path: string) => {
  const started = performance.now();
  const response = await fetch(url + path);
  await response.text();
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return performance.now() - started;
};

console.log(`Explorer benchmark: ${STAGES} stages of ${STAGE_EVENTS} events, batches of ${BATCH}, ${CONCURRENCY} at a time\n`);
console.log(
  'events sent | events stored | events/s in stage | file MiB | summary ms | requests ms | journey (user) ms | journey (session) ms | errors ms | performance ms',
);
let total = 0;
try {
  for (let stage = 0; stage < STAGES; stage += 1) {
    const bodies = Array.from({ length: STAGE_EVENTS / BATCH }, batch);
    const started = performance.now();
    for (let i = 0; i < bodies.length; i += CONCURRENCY) {
      await Promise.all(
        bodies.slice(i, i + CONCURRENCY).map(async (body) => {
          const response = await fetch(`${url}/batch/`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
            body,
          });
          if (!response.ok) throw new Error(`batch: ${response.status}`);
          await response.text();
        }),
      );
    }
    const rate = STAGE_EVENTS / ((performance.now() - started) / 1000);
    total += STAGE_EVENTS;
    const timings = [
      await time('/api/summary'),
      await time('/api/requests'),
      await time('/api/journey?distinct_id=user_7'),
      await time('/api/journey?session_id=session_3'),
      await time('/api/errors'),
      await time('/api/performance'),
    ];
    const stored = ((await (await fetch(`${url}/api/summary`)).json()) as { events: number }).events;
    console.log([total, stored, Math.round(rate), (size() / 1024 / 1024).toFixed(1), ...timings.map((t) => t.toFixed(0))].join(' | '));
  }
} finally {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
}

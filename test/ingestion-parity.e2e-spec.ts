// Ingestion parity with PostHog's capture service, the way its own tests check it
// (rust/capture/tests/django_compat.rs replays requests_dump.jsonl): every request
// of test/fixtures/capture-requests.jsonl is posted to the explorer as it was sent,
// and every event PostHog stores for it must be stored alike (uuid, event,
// distinct id, timestamp, and the properties named).
import type { INestApplication } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startExplorer } from '../apps/explorer/src/create-explorer-app.js';

interface Case {
  path: string;
  method: string;
  content_encoding: string;
  content_type: string;
  body: string;
  output: { uuid: string; event: string; distinct_id: string; timestamp: string; properties?: Record<string, unknown> }[];
}

const file = fileURLToPath(new URL('./fixtures/capture-requests.jsonl', import.meta.url));
const cases: [string, Case][] = [];
let comment = '';
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (line.startsWith('#')) comment = line.slice(1).trim();
  else if (line.trim() !== '') cases.push([comment, JSON.parse(line) as Case]);
}

describe('Journey explorer: ingestion parity with PostHog capture fixtures', () => {
  let explorer: INestApplication;
  let url: string;

  beforeAll(async () => {
    ({ app: explorer, url } = await startExplorer(
      { port: 0, host: '127.0.0.1', dbPath: ':memory:', retentionDays: 0, maxEvents: 100_000, maxBodyBytes: 1024 * 1024 },
      false,
    ));
  });
  afterAll(() => explorer.close());

  it('has fixtures', () => expect(cases.length).toBeGreaterThanOrEqual(10));

  it.each(cases)('%s', async (_comment, c) => {
    const headers: Record<string, string> = {};
    if (c.content_type) headers['Content-Type'] = c.content_type;
    if (c.content_encoding) headers['Content-Encoding'] = c.content_encoding;
    const response = await fetch(`${url}${c.path}`, { method: c.method, headers, body: Buffer.from(c.body, 'base64') });
    const answer = (await response.json()) as Record<string, unknown>;
    expect({ status: response.status, answer }).toMatchObject({ status: 200, answer: { status: 1, stored: c.output.length, rejected: 0 } });
    for (const expected of c.output) {
      const { events } = (await (await fetch(`${url}/api/journey?distinct_id=${encodeURIComponent(expected.distinct_id)}`)).json()) as {
        events: any[];
      };
      const stored = events.find((e) => e.uuid === expected.uuid);
      expect(stored).toMatchObject({
        uuid: expected.uuid,
        event: expected.event,
        distinct_id: expected.distinct_id,
        timestamp: expected.timestamp,
      });
      if (expected.properties) expect(stored.properties).toMatchObject(expected.properties);
    }
  });
});

import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { SharedPostHog } from '../outlets/posthog-client.js';
import { jsonBytes, QueueBudget } from './queue-budget.js';

interface Item {
  message: { event: string; properties: Record<string, any> };
}

const answered = () => ({ status: 200, headers: { get: () => null }, text: async () => '{}', json: async () => ({}) });

/** Requests held until the test ends (`afterEach`), so that no batch leaves the queue while a test reads it. */
const releases: (() => void)[] = [];
function heldFetch() {
  const held = new Promise<void>((release) => releases.push(release));
  return async () => {
    await held;
    return answered();
  };
}

/** A client that queues and never sends (no interval, a batch larger than anything queued here, or its requests held). */
function client(
  budget: QueueBudget,
  maxQueueSize = 10_000,
  fetch: () => Promise<ReturnType<typeof answered>> = async () => answered(),
): SharedPostHog {
  // A key of its own: posthog-node registers error captures per destination (key and host).
  // Its requests answered here: a flush after the test (its shutdown) must not log a network error once Jest is done.
  const c = new SharedPostHog(`phc_test_key_${clients.length}_${Date.now()}`, {
    host: 'http://127.0.0.1:9',
    flushAt: maxQueueSize,
    flushInterval: 0,
    maxQueueSize,
    fetch,
  });
  c.shareQueueBudget(budget);
  return c;
}

const queueOf = (c: SharedPostHog) => (c.getPersistedProperty('queue' as never) ?? []) as Item[];

async function settled(c: SharedPostHog, last: (items: Item[]) => boolean): Promise<void> {
  // A bound on the wait, not a timing assertion: 200 `$exception`s are built with their source lines, slow on a busy machine.
  const deadline = Date.now() + 20_000;
  while (!last(queueOf(c))) {
    if (Date.now() > deadline)
      throw new Error(`not queued in time: ${queueOf(c).length} queued, last ${JSON.stringify(queueOf(c).at(-1)?.message.properties.i)}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

let warn: ReturnType<typeof jest.spyOn>;
const clients: SharedPostHog[] = [];
beforeEach(() => {
  warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
});
afterEach(async () => {
  // Nothing to send at shutdown: the host is unreachable by design.
  for (const c of clients) c.setPersistedProperty('queue' as never, [] as never);
  for (const release of releases.splice(0)) release();
  await Promise.all(clients.splice(0).map((c) => c.shutdown(100)));
  warn.mockRestore();
});

describe("posthog-node's queue under the shared byte budget", () => {
  it('bounds $exceptions with their stack frames', async () => {
    const budget = new QueueBudget(200_000);
    const c = client(budget);
    clients.push(c);
    // Each of its own type: posthog-node rate-limits `$exception`s per type.
    for (let i = 0; i < 200; i++) c.captureException(Object.assign(new Error(`failure ${i}`), { name: `Failure${i}` }), 'u', { i });
    // Built asynchronously, they may be queued slightly out of order.
    await settled(c, (items) => items.some((item) => item.message.properties.i === 199));
    const items = queueOf(c);
    expect(items.every((item) => item.message.event === '$exception')).toBe(true);
    expect(budget.peakBytes).toBeLessThanOrEqual(200_000);
    expect(items.length).toBeLessThan(200);
  });

  it('holds at most maxQueueBytes, counts each item as its JSON, and keeps the newest', async () => {
    const budget = new QueueBudget(50_000);
    const c = client(budget);
    clients.push(c);
    for (let i = 0; i < 500; i++) c.capture({ distinctId: 'u', event: 'big', properties: { i, pad: 'x'.repeat(500) } });
    await settled(c, (items) => items.at(-1)?.message.properties.i === 499);

    const items = queueOf(c);
    const actual = items.reduce((sum, item) => sum + jsonBytes(item.message), 0);
    expect(budget.peakBytes).toBeLessThanOrEqual(50_000);
    expect(budget.usedBytes).toBeLessThanOrEqual(50_000);
    // Sized before posthog-node adds `$lib` and `$lib_version`: within a few per cent of the JSON sent.
    expect(Math.abs(budget.usedBytes - actual) / actual).toBeLessThan(0.05);
    expect(items.length).toBeLessThan(100);
    expect(items.map((item) => item.message.properties.i)).toEqual(Array.from({ length: items.length }, (_, k) => 500 - items.length + k));
    expect(budget.drops.totals.get('posthog-queue-full')).toBe(500 - items.length);
    // One line for all those drops (this budget's: the previous test's client may log its own at its shutdown).
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(warn.mock.calls.filter(([m]: unknown[]) => /Dropped \d+ telemetry event.*maxQueueBytes 50000\b/.test(String(m)))).toHaveLength(
      1,
    );
  });

  it('follows a batch leaving (a new array stored) and its own maxQueueSize', async () => {
    const budget = new QueueBudget(10_000_000);
    // flushAt is maxQueueSize (posthog-node's floor), so a flush starts at 50 queued: its request is held, as a
    // batch stays queued until PostHog answers, or the flush could empty the queue before it is read.
    const c = client(budget, 50, heldFetch());
    clients.push(c);
    for (let i = 0; i < 80; i++) c.capture({ distinctId: 'u', event: 'small', properties: { i } });
    await settled(c, (items) => items.at(-1)?.message.properties.i === 79);
    expect(queueOf(c)).toHaveLength(50);
    const before = budget.usedBytes;
    const perItem = before / 50;
    // What posthog-node does when a batch was sent: stores the queue without it.
    c.setPersistedProperty('queue' as never, queueOf(c).slice(20) as never);
    expect(budget.usedBytes).toBeCloseTo(before - 20 * perItem, -1);
    c.setPersistedProperty('queue' as never, [] as never);
    expect(budget.usedBytes).toBe(0);
  });
});

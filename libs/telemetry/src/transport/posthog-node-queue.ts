import { jsonBytes, type BudgetAccount, type QueueBudget } from './queue-budget.js';

/** What the account reads of posthog-node's client. */
export interface PostHogQueueHost {
  /** The stored queue of a persisted key (posthog-node keeps it in memory). */
  queue(key: string): unknown;
  /** posthog-node's own bound, in events (`posthogOptions.maxQueueSize`). */
  readonly maxQueueSize: number;
}

interface Tracked {
  /** The array last stored under the key, and its length then. */
  array?: unknown[];
  length: number;
  bytes: number;
}

/**
 * posthog-node's queue (`$exception`s, the app's own captures) as an account of
 * the module's {@link QueueBudget}. posthog-node keeps each queue as an array
 * of `{ message }` under a persisted key, pushes one item per event and stores
 * the array again, and stores a new array when a batch leaves; the account
 * follows those stores, sizing each item once (its JSON), so it costs one
 * `JSON.stringify` per event and nothing per item already counted.
 *
 * Before posthog-node queues an event (`admit`, from `processBeforeEnqueue`),
 * room is made: its own oldest item goes when it holds `maxQueueSize` (posthog-node
 * would drop it itself, unseen), then the budget evicts the oldest events of
 * whichever queue holds the most bytes until the new one fits.
 */
export class PostHogQueueAccount implements BudgetAccount {
  private readonly tracked = new Map<string, Tracked>();
  private readonly sizes = new WeakMap<object, number>();
  /** Size of the message being queued, for the item posthog-node is about to push. */
  private pending?: number;

  constructor(
    private readonly host: PostHogQueueHost,
    private readonly budget: QueueBudget,
  ) {
    budget.join(this);
  }

  get queuedBytes(): number {
    let bytes = 0;
    for (const t of this.tracked.values()) bytes += t.bytes;
    return bytes;
  }

  /** Makes room for `message`, about to be queued under `key`; `null` drops it (larger than the whole budget). */
  admit<T>(message: T, key: string): T | null {
    const size = jsonBytes(message);
    if (this.budget.tooLarge(size)) {
      this.budget.drops.drop(
        'posthog-too-large',
        1,
        `an event for posthog-node of ${size} bytes is larger than maxQueueBytes (${this.budget.maxBytes})`,
      );
      return null;
    }
    if (!this.tracked.has(key)) this.tracked.set(key, { length: 0, bytes: 0 });
    this.sync(key);
    const queue = this.host.queue(key);
    if (Array.isArray(queue) && queue.length >= this.host.maxQueueSize) this.evictFrom(key);
    this.budget.makeRoom(size);
    this.pending = size;
    return message;
  }

  /** posthog-node stored `value` under `key`. */
  stored(key: string, value: unknown): void {
    const t = this.tracked.get(key);
    if (t === undefined) return;
    const array = Array.isArray(value) ? value : [];
    if (array === t.array && array.length >= t.length) {
      // The same array, grown: items pushed at its end.
      for (let i = t.length; i < array.length; i++) t.bytes += this.sizeOf(array[i], i === array.length - 1);
    } else {
      // A new array (a batch left, the queue was cleared): counted again, each item's size remembered.
      t.bytes = 0;
      for (let i = 0; i < array.length; i++) t.bytes += this.sizeOf(array[i], i === array.length - 1);
    }
    t.array = array;
    t.length = array.length;
    this.pending = undefined;
    this.budget.noteUsage();
  }

  evictOldest(): number {
    let biggest: string | undefined;
    let most = 0;
    for (const [key, t] of this.tracked)
      if (t.length > 0 && (biggest === undefined || t.bytes > most)) {
        biggest = key;
        most = t.bytes;
      }
    return biggest === undefined ? 0 : this.evictFrom(biggest);
  }

  private evictFrom(key: string): number {
    const t = this.tracked.get(key);
    if (t === undefined) return 0;
    this.sync(key);
    const array = t.array;
    const oldest = array?.shift();
    if (array === undefined || oldest === undefined) return 0;
    t.length = array.length;
    const freed = (typeof oldest === 'object' && oldest !== null ? this.sizes.get(oldest) : undefined) ?? 0;
    t.bytes -= freed;
    this.budget.drops.drop(
      'posthog-queue-full',
      1,
      `posthog-node's queue is full (maxQueueSize ${this.host.maxQueueSize}, maxQueueBytes ${this.budget.maxBytes} shared with the module's queue)`,
    );
    return freed;
  }

  /** Takes in an array posthog-node replaced without storing it through the client (not expected; kept honest). */
  private sync(key: string): void {
    const current = this.host.queue(key);
    const t = this.tracked.get(key);
    if (t === undefined) return;
    if (current !== t.array || (Array.isArray(current) && current.length !== t.length)) {
      const pending = this.pending;
      this.pending = undefined;
      this.stored(key, current);
      this.pending = pending;
    }
  }

  private sizeOf(item: unknown, last: boolean): number {
    if (typeof item !== 'object' || item === null) return 0;
    let size = this.sizes.get(item);
    if (size === undefined) {
      size = last && this.pending !== undefined ? this.pending : jsonBytes((item as { message?: unknown }).message);
      this.sizes.set(item, size);
    }
    return size;
  }
}

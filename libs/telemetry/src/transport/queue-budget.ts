import { DropLog } from './drop-log.js';

/** One holder of queued events under a {@link QueueBudget}: the module's sender, or posthog-node's queue. */
export interface BudgetAccount {
  /** Bytes it holds now (serialised JSON of its queued events, and of a batch in flight). */
  readonly queuedBytes: number;
  /** Drops its oldest queued event; the bytes that freed, 0 when it has none to drop. */
  evictOldest(): number;
}

/**
 * The bytes every telemetry queue of the process may hold together (the
 * module's own queue and posthog-node's), counted as serialised JSON. An
 * account about to take an event makes room first: the oldest events of the
 * account holding the most bytes go, so the newest survive an outage and a
 * flood of one kind (large `$exception`s) cannot crowd out the other entirely.
 */
export class QueueBudget {
  private readonly accounts: BudgetAccount[] = [];
  /** Where every account counts and logs its dropped events (one line per kind a minute). */
  readonly drops = new DropLog();
  /** The most bytes held at once so far (tests and figures read it). */
  peakBytes = 0;

  constructor(readonly maxBytes: number) {}

  join(account: BudgetAccount): void {
    this.accounts.push(account);
  }

  get usedBytes(): number {
    let used = 0;
    for (const account of this.accounts) used += account.queuedBytes;
    return used;
  }

  /** True when an event of `bytes` can never fit: it is to be dropped, not queued. */
  tooLarge(bytes: number): boolean {
    return bytes > this.maxBytes;
  }

  /** Evicts oldest events until `bytes` more fit (or nothing evictable is left). */
  makeRoom(bytes: number): void {
    let used = this.usedBytes;
    while (used + bytes > this.maxBytes) {
      let freed = 0;
      for (const account of [...this.accounts].sort((a, b) => b.queuedBytes - a.queuedBytes)) {
        freed = account.evictOldest();
        if (freed > 0) break;
      }
      if (freed === 0) return;
      used -= freed;
    }
  }

  /** Records the bytes held after an account took an event. */
  noteUsage(): void {
    const used = this.usedBytes;
    if (used > this.peakBytes) this.peakBytes = used;
  }
}

/** Serialised size of a value, as JSON; a bounded estimate when it cannot be serialised. */
export function jsonBytes(value: unknown): number {
  try {
    const json = JSON.stringify(value);
    return json === undefined ? 0 : json.length;
  } catch {
    return 64 * 1024;
  }
}

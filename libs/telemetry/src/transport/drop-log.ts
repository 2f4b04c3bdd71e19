import { Logger } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';

export const DROP_LOG_INTERVAL_MS = 60_000;

interface Kind {
  count: number;
  reason: string;
  lastLog: number;
  timer?: NodeJS.Timeout;
}

/**
 * Counts dropped events by kind (queue full, refused by PostHog, too large, …)
 * and logs each kind at most once a minute: the first drop of a kind is said at
 * once, later ones are added up until the minute is over (and once more at
 * shutdown), whatever the rate.
 */
export class DropLog {
  private readonly kinds = new Map<string, Kind>();
  private readonly outside = AsyncLocalStorage.snapshot();
  /** Events dropped, per kind, since the start (tests and figures read it). */
  readonly totals = new Map<string, number>();

  constructor(private readonly logger: Logger = new Logger('Telemetry')) {}

  /** Counts `count` dropped events of `kind`; `reason` ends the log line ("Dropped 3 telemetry event(s): <reason>."). */
  drop(kind: string, count: number, reason: string): void {
    let entry = this.kinds.get(kind);
    if (entry === undefined) this.kinds.set(kind, (entry = { count: 0, reason, lastLog: -DROP_LOG_INTERVAL_MS }));
    entry.count += count;
    entry.reason = reason;
    this.totals.set(kind, (this.totals.get(kind) ?? 0) + count);
    if (entry.timer !== undefined) return;
    const wait = Math.max(0, entry.lastLog + DROP_LOG_INTERVAL_MS - Date.now());
    entry.timer = this.outside(() => setTimeout(() => this.log(kind), wait));
    entry.timer.unref();
  }

  /** Logs every kind with drops not yet said. */
  flush(): void {
    for (const kind of this.kinds.keys()) this.log(kind);
  }

  private log(kind: string): void {
    const entry = this.kinds.get(kind);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.count === 0) return;
    entry.lastLog = Date.now();
    this.logger.warn(`Dropped ${entry.count} telemetry event(s): ${entry.reason}.`);
    entry.count = 0;
  }
}

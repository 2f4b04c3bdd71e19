import type { MessageEvent } from '@nestjs/common';
import {
  catchError,
  defer,
  distinctUntilChanged,
  EMPTY,
  exhaustMap,
  interval,
  map,
  merge,
  Observable,
  share,
  startWith,
  Subject,
  takeUntil,
  timer,
} from 'rxjs';
import type { EventStore } from './event-store.js';

const POLL_MS = 500;
const HEARTBEAT_MS = 15_000;

/**
 * Server-Sent Events for the page: one message whenever events were stored
 * (`{ "seq": <latest> }`), so the page reloads what it shows only when
 * something changed, instead of on a timer. One shared check of the table's
 * newest row, twice a second, only while a page listens. Every stream ends
 * when the explorer shuts down, so open pages never hold its shutdown up.
 */
export class LiveEvents {
  private readonly closing = new Subject<void>();
  private readonly changes: Observable<MessageEvent>;

  constructor(private readonly store: EventStore) {
    this.changes = interval(POLL_MS).pipe(
      startWith(0),
      exhaustMap(() => defer(() => this.latest()).pipe(catchError(() => EMPTY))),
      distinctUntilChanged(),
      map((seq) => ({ type: 'events', data: { seq } }) as MessageEvent),
      share(),
    );
  }

  private async latest(): Promise<number> {
    const [row] = await this.store.query<{ seq: number | null; n: number }>('SELECT max(seq) AS seq, count(*) AS n FROM events');
    // A deletion (retention) changes the count without a new seq.
    return (row?.seq ?? 0) * 1_000_003 + (row?.n ?? 0);
  }

  stream(): Observable<MessageEvent> {
    const heartbeat = timer(HEARTBEAT_MS, HEARTBEAT_MS).pipe(map(() => ({ type: 'heartbeat', data: {} }) as MessageEvent));
    return merge(this.changes, heartbeat).pipe(takeUntil(this.closing));
  }

  close() {
    this.closing.next();
    this.closing.complete();
  }
}

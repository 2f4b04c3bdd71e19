import { renderApiRequest, type ApiRequestRecord, type UuidSeed } from '../events/api-request-record.js';

/** One request's batch, as the sender hands it over: its events (JSON, or `api_request` values) between a head and a tail. */
export interface BatchBody {
  /** `{"api_key":…,"batch":[` */
  head: string;
  events: (string | ApiRequestRecord)[];
  /** `],"sent_at":…}` */
  tail: string;
  /** The sender's uuid seed (`renderApiRequest`). */
  seed: UuidSeed;
}

/**
 * The body's JSON text. Self-contained but for `renderApiRequest` (no imports, no outer names): the
 * sending thread runs its text beside that function's.
 */
export function batchJson(body: BatchBody): string {
  const events = body.events;
  const parts = new Array<string>(events.length);
  const clock = { second: Number.NaN, text: '' };
  for (let i = 0; i < events.length; i++) {
    const event = events[i];
    parts[i] = typeof event === 'string' ? event : renderApiRequest(event, body.seed, clock);
  }
  return body.head + parts.join(',') + body.tail;
}

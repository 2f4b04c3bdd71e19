import type { Untraced } from '../outlets/sentry-bridge.js';
import type { TelemetryEvent } from '../events/telemetry-events.js';

/** Where built events go: PostHog over HTTP, or the log in local mode. */
export interface EventSink {
  /** Takes an event; never throws, never waits. */
  enqueue(event: TelemetryEvent): void;
  /**
   * Takes an event as the JSON `JSON.stringify` gives of it, where the sink keeps events serialised;
   * `utf8Bytes`, its size in UTF-8, when the caller knows it.
   */
  enqueueJson?(json: string, utf8Bytes?: number): void;
  /** Delivers what is queued now. */
  flush(): Promise<void>;
  /** Delivers what is queued, for at most `timeoutMs`, then stops taking events. */
  shutdown(timeoutMs: number): Promise<void>;
  /**
   * Work still to enqueue events (an `api_error` waiting for its `$exception` to be built and queued):
   * `flush` and `shutdown` wait for it first, so those events are not left out.
   */
  hold?(work: Promise<unknown>): void;
  /** Runs the sink's own requests, if it makes any: set to keep them out of the app's traces. */
  untraced?: Untraced;
}

import { Inject, Injectable } from '@nestjs/common';
import { sendApiRequestJson } from '../events/api-request-json.js';
import { apiRequestEvent, type ApiRequestFields, type EventIdentity, type TelemetryEvent } from '../events/telemetry-events.js';
import { TelemetryFailures } from '../telemetry-failures.js';
import { EVENT_SINK, TELEMETRY_OPTIONS } from '../telemetry.constants.js';
import type { ResolvedTelemetryOptions } from '../telemetry.options.js';
import type { EventSink } from '../transport/event-sink.js';

/**
 * The one way out of the module's own events: the app's `beforeSend`, then the
 * sink (PostHog batches, or the log in local mode). A failing `beforeSend`
 * drops the event.
 */
@Injectable()
export class EventsOutlet {
  constructor(
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
    @Inject(EVENT_SINK) private readonly sink: EventSink,
    private readonly failures: TelemetryFailures,
  ) {}

  send(event: TelemetryEvent): void {
    let outgoing: TelemetryEvent | null | undefined = event;
    if (this.options.beforeSend) {
      try {
        outgoing = this.options.beforeSend(event);
      } catch (error) {
        this.failures.report('beforeSend', error);
        return;
      }
    }
    if (outgoing) this.sink.enqueue(outgoing);
  }

  /**
   * `api_request`, the event of every request: written straight to JSON when the sink keeps JSON and no
   * `beforeSend` needs the event as an object.
   */
  sendApiRequest(identity: EventIdentity, fields: ApiRequestFields): void {
    if (this.options.beforeSend === undefined && this.sink.enqueueJson !== undefined)
      sendApiRequestJson(this.sink as Required<Pick<EventSink, 'enqueueJson'>>, identity, fields);
    else this.send(apiRequestEvent(identity, fields));
  }
}

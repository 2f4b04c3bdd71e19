import { Logger } from '@nestjs/common';
import type { EventSink } from './event-sink.js';
import type { TelemetryEvent } from '../events/telemetry-events.js';

/** Local mode (no API key): each event becomes one readable log line; nothing leaves the process. */
export class LocalLogSink implements EventSink {
  private readonly logger = new Logger('Telemetry');

  enqueue(event: TelemetryEvent): void {
    try {
      const { traceback, ...rest } = event.properties;
      const firstLine = typeof traceback === 'string' ? traceback.split('\n', 2).slice(0, 2).join(' | ') : undefined;
      const shown = firstLine === undefined ? rest : { ...rest, traceback: firstLine };
      this.logger.log(`${event.event} distinct_id=${event.distinct_id} ${JSON.stringify(shown)}`);
    } catch {
      /* logging must not hurt the request either */
    }
  }

  async flush(): Promise<void> {
    // Nothing waits: each event was logged when it was sent.
  }

  async shutdown(): Promise<void> {
    // Nothing to deliver or close.
  }
}

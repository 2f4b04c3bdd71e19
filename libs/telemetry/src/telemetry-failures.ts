import { Injectable, Logger } from '@nestjs/common';

/**
 * Telemetry's own failures (a throwing hook, a client that throws): never
 * thrown into the app, logged once per kind so a failing hook cannot flood the log.
 */
@Injectable()
export class TelemetryFailures {
  private readonly logger = new Logger('Telemetry');
  private readonly seen = new Set<string>();

  report(what: string, error: unknown): void {
    if (this.seen.has(what)) return;
    this.seen.add(what);
    let reason: string;
    try {
      reason = error instanceof Error ? error.message : String(error);
    } catch {
      reason = 'unprintable error';
    }
    this.logger.error(`Telemetry ${what} failed and was skipped (further failures of this kind are not logged): ${reason.slice(0, 500)}`);
  }
}

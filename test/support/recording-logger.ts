import { ConsoleLogger } from '@nestjs/common';
import { createServer } from 'node:net';

/**
 * A logger that keeps what the app logs (log, warn, error), to read local
 * mode's lines and count telemetry's own warnings. Nest's logger is
 * process-wide and set by the last app created: create this app last.
 */
export class RecordingLogger extends ConsoleLogger {
  readonly entries: { context: string; message: string }[] = [];

  log(message: unknown, context?: string) {
    this.entries.push({ context: context ?? '', message: String(message) });
  }
  warn(message: unknown, context?: string) {
    this.log(message, context);
  }
  error(message: unknown, context?: string) {
    this.log(message, context);
  }
  debug() {
    // Not kept: the tests read log, warn and error.
  }
  verbose() {
    // Not kept either.
  }

  /** Messages logged under `context` (`Telemetry` for the module's own). */
  messagesFrom(context: string): string[] {
    return this.entries.filter((e) => e.context === context).map((e) => e.message);
  }

  count(pattern: RegExp): number {
    return this.entries.filter((e) => pattern.test(e.message)).length;
  }
}

/** A port nothing listens on (for a PostHog host that refuses, or a child process to listen on). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

import { ConsoleLogger } from '@nestjs/common';

/**
 * The demo's logger. Its error routes throw on purpose, and Nest's
 * ExceptionsHandler would print each with its whole stack (about 20 red stacks
 * per round of demo traffic). Here each is one short line saying it is expected;
 * the stack is in the explorer's Issues page. `DEMO_ERROR_STACKS=1` prints them whole.
 */
export class DemoLogger extends ConsoleLogger {
  private readonly stacks = process.env.DEMO_ERROR_STACKS === '1';

  error(message: unknown, ...rest: unknown[]): void {
    const context = rest[rest.length - 1];
    if (this.stacks || context !== 'ExceptionsHandler') return super.error(message, ...(rest as [string?]));
    const text =
      message instanceof Error
        ? `${message.name}: ${message.message}`
        : typeof message === 'string'
          ? message.split('\n')[0]
          : String(message);
    super.warn(`${text.slice(0, 160)} (a demo error, thrown on purpose: see the explorer's Issues page)`, 'ExpectedError');
  }
}

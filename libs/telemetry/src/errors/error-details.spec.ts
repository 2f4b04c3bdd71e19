import { BadRequestException, HttpException, InternalServerErrorException, NotFoundException } from '@nestjs/common';
import { MAX_STRING_LENGTH } from '../privacy/bounded.js';
import { describeError } from './error-details.js';

class PaymentFailedError extends Error {}
// On the prototype, so the stack V8 captures at construction already names the class.
PaymentFailedError.prototype.name = 'PaymentFailedError';

function withStack(error: Error, stack: string): Error {
  Object.defineProperty(error, 'stack', { value: stack, configurable: true, writable: true });
  return error;
}

describe('describeError', () => {
  describe('traceback', () => {
    it('is at most the limit for a megabyte stack', () => {
      const error = withStack(new Error('big'), 'Error: big\n' + '    at frame (file.js:1:1)\n'.repeat(40_000));
      expect(error.stack!.length).toBeGreaterThan(1_000_000);
      for (const limit of [100, 1000, 5000]) {
        const { traceback } = describeError(error, limit);
        expect(traceback.length).toBeLessThanOrEqual(limit);
        expect(traceback.startsWith('Error: big\n    at frame')).toBe(true);
      }
    });

    it('is at most the limit for a chain of megabyte stacks', () => {
      const inner = withStack(new Error('inner'), 'Error: inner\n' + 'y'.repeat(1_000_000));
      const outer = withStack(new Error('outer', { cause: inner }), 'Error: outer\n' + 'x'.repeat(1_000_000));
      expect(describeError(outer, 5000).traceback.length).toBeLessThanOrEqual(5000);
    });

    it('contains the real stack of an Error', () => {
      const { traceback } = describeError(new TypeError('bad input'), 5000);
      expect(traceback).toMatch(/^TypeError: bad input\n\s+at /);
    });

    it('includes "Caused by" for each cause, in order', () => {
      const root = new Error('connection refused');
      const middle = new PaymentFailedError('charge failed', { cause: root });
      const top = new InternalServerErrorException('Checkout failed', { cause: middle });
      const { traceback } = describeError(top, 50_000);
      expect(top.stack).toContain('Checkout failed');
      const first = traceback.indexOf(top.stack!);
      const second = traceback.indexOf('\nCaused by: PaymentFailedError: charge failed\n    at ');
      const third = traceback.indexOf('\nCaused by: Error: connection refused\n    at ');
      expect(first).toBe(0);
      expect(second).toBeGreaterThan(first);
      expect(third).toBeGreaterThan(second);
    });

    it('describes a non-Error cause by its type and value', () => {
      const { traceback } = describeError(new Error('outer', { cause: 'db down' }), 5000);
      expect(traceback).toContain('\nCaused by: string: db down');
      const objectCause = describeError(new Error('outer', { cause: { code: 'E42' } }), 5000).traceback;
      expect(objectCause).toContain('\nCaused by: Object: {"code":"E42"}');
    });

    it('follows at most 3 causes and terminates on a circular chain', () => {
      let error: Error = new Error('level 0');
      for (let i = 1; i < 10; i++) error = new Error(`level ${i}`, { cause: error });
      expect(describeError(error, 100_000).traceback.match(/Caused by: /g)).toHaveLength(3);

      const a: any = new Error('a');
      a.cause = new Error('b', { cause: a });
      const { traceback } = describeError(a, 100_000);
      expect(traceback.match(/Caused by: /g)).toHaveLength(3);
    });

    it('gives a thrown string, null or undefined a one-line traceback', () => {
      expect(describeError('plain failure', 5000).traceback).toBe('string: plain failure');
      expect(describeError(null, 5000).traceback).toBe('');
      expect(describeError(undefined, 5000).traceback).toBe('');
      expect(describeError(42, 5000).traceback).toBe('number: 42');
    });

    it('is empty for a limit of 0', () => {
      expect(describeError(new Error('x'), 0).traceback).toBe('');
    });

    // BUG (from `truncate`): with a limit smaller than the truncation note, the
    // traceback is the ~24-character note, longer than the configured limit.
    it('is at most the limit even for a tiny limit', () => {
      expect(describeError(new Error('boom'), 10).traceback.length).toBeLessThanOrEqual(10);
    });
  });

  describe('exceptionType', () => {
    it.each<[string, unknown, string]>([
      ['TypeError', new TypeError('x'), 'TypeError'],
      ['Error subclass', new PaymentFailedError('x'), 'PaymentFailedError'],
      ['Nest NotFoundException', new NotFoundException(), 'NotFoundException'],
      [
        'class instance that is not an Error',
        new (class Refusal {
          readonly refused = true;
        })(),
        'Refusal',
      ],
      ['plain object', { message: 'x' }, 'Object'],
      ['Object.create(null)', Object.create(null), 'Object'],
      ['string', 'oops', 'string'],
      ['null', null, 'null'],
      ['undefined', undefined, 'undefined'],
      ['number', 7, 'number'],
      ['symbol', Symbol('s'), 'symbol'],
      ['bigint', 1n, 'bigint'],
    ])('%s → %s', (_label, value, expected) => {
      expect(describeError(value, 5000).exceptionType).toBe(expected);
    });

    it('survives a throwing constructor getter', () => {
      const value = Object.defineProperty({}, 'constructor', {
        get() {
          throw new Error('no');
        },
      });
      expect(describeError(value, 5000).exceptionType).toBe('Object');
    });
  });

  describe('message', () => {
    it('is the message of an Error', () => {
      expect(describeError(new Error('disk full'), 5000).message).toBe('disk full');
    });

    it('is the value of a thrown string, and "null" for null', () => {
      expect(describeError('plain failure', 5000).message).toBe('plain failure');
      expect(describeError(null, 5000).message).toBe('null');
      expect(describeError(undefined, 5000).message).toBe('undefined');
    });

    it('is bounded', () => {
      expect(describeError(new Error('m'.repeat(100_000)), 5000).message.length).toBeLessThanOrEqual(MAX_STRING_LENGTH);
    });

    it('of an HttpException with a string response is that string', () => {
      expect(describeError(new HttpException('I am a teapot', 418), 5000).message).toBe('I am a teapot');
      expect(describeError(new NotFoundException('Item 42 not found'), 5000).message).toBe('Item 42 not found');
    });

    it('of a ValidationPipe-style BadRequestException lists every message of its response', () => {
      const error = new BadRequestException(['name must be a string', 'age must be a positive number']);
      const { message } = describeError(error, 5000);
      expect(message).toContain('name must be a string');
      expect(message).toContain('age must be a positive number');
    });

    it('of an HttpException with an object response is the response message', () => {
      const error = new HttpException({ message: 'Order is locked', code: 'ORDER_LOCKED' }, 409);
      expect(describeError(error, 5000).message).toBe('Order is locked');
    });

    it('of an HttpException whose response has no message falls back to the exception message', () => {
      const error = new HttpException({ reason: 'x' }, 409);
      expect(describeError(error, 5000).message).toBe(error.message);
    });

    it('of an HttpException without a custom message is the status text', () => {
      expect(describeError(new NotFoundException(), 5000).message).toBe('Not Found');
    });
  });

  describe('never throws, whatever was thrown', () => {
    // BUG: `messageOf` reads `error.message` and `getResponse().message`
    // outside any try/catch: each of these makes describeError throw, and the
    // api_error event of the request is lost.
    it('an Error whose message getter throws', () => {
      const error = new Error('x');
      Object.defineProperty(error, 'message', {
        get() {
          throw new Error('message getter');
        },
      });
      expect(() => describeError(error, 5000)).not.toThrow();
    });

    it('an HttpException with an undefined or null response', () => {
      expect(() => describeError(new HttpException(undefined as unknown as string, 500), 5000)).not.toThrow();
      expect(() => describeError(new HttpException(null as unknown as string, 500), 5000)).not.toThrow();
    });

    it('an HttpException subclass whose getResponse throws', () => {
      class BrokenException extends HttpException {
        getResponse(): string | object {
          throw new Error('no response');
        }
      }
      expect(() => describeError(new BrokenException('x', 500), 5000)).not.toThrow();
    });

    it('objects with throwing getters, circular objects and Proxies', () => {
      const circular: any = { a: 1 };
      circular.self = circular;
      const getters = Object.defineProperty({}, 'boom', {
        enumerable: true,
        get() {
          throw new Error('boom');
        },
      });
      const proxy = new Proxy(
        {},
        {
          get() {
            throw new Error('get');
          },
        },
      );
      for (const value of [circular, getters, proxy]) {
        expect(() => describeError(value, 5000)).not.toThrow();
      }
      expect(describeError(circular, 5000).message).toBe('{"a":1,"self":"[Circular]"}');
    });
  });
});

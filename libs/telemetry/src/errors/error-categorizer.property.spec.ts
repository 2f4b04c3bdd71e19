import { HttpException } from '@nestjs/common';
import fc from 'fast-check';
import { everyKindOfValue } from '../../../../test/support/arbitraries.js';
import { categorizeError, ErrorCategory } from './error-categorizer.js';

/** Fixed seed: a failure names its counterexample, and the next run finds the same one. */
const SEED = 4_242;
const RUNS = 300;

const BUILT_IN: string[] = Object.values(ErrorCategory);

const anything = everyKindOfValue({ maxDepth: 4 });

/** Codes, statuses and phrasings the categories look for, mixed with noise. */
const code = fc.oneof(
  fc.constantFrom(
    'ECONNRESET',
    'EPIPE',
    'ECONNABORTED',
    'ERR_STREAM_PREMATURE_CLOSE',
    'UND_ERR_SOCKET',
    'content_filter',
    'content_policy_violation',
    'insufficient_quota',
    'quota_exceeded',
    'billing_hard_limit_reached',
    'rate_limit_exceeded',
    'ENOENT',
  ),
  fc.string({ maxLength: 20 }),
  anything,
);
const status = fc.oneof(fc.integer({ min: 100, max: 599 }), fc.constantFrom(402, 404, 429, 500), fc.double(), anything);
const message = fc.oneof(
  fc.constantFrom(
    'socket hang up',
    'client disconnected',
    'The response was filtered due to content management policy',
    'You exceeded your current quota, please check your plan and billing details.',
    "Cannot read properties of undefined (reading 'id')",
    'request aborted',
  ),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ minLength: 4_000, maxLength: 6_000 }),
  anything,
);
const name = fc.oneof(
  fc.constantFrom('Error', 'TypeError', 'AbortError', 'APIError', 'HttpException'),
  fc.string({ maxLength: 30 }),
  anything,
);

/** Error-like values: plain records, real Errors with the fields assigned, with a `cause` chain and `error` body, any field possibly a throwing getter. */
const { errorLike } = fc.letrec<{ errorLike: unknown }>((tie) => ({
  errorLike: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    anything,
    fc
      .record(
        {
          code,
          status,
          statusCode: status,
          message,
          name,
          type: code,
          finish_reason: code,
          error: fc.record({ code, type: code, message }, { requiredKeys: [] }),
          cause: tie('errorLike'),
        },
        { requiredKeys: [] },
      )
      .chain((fields) =>
        fc.tuple(fc.constantFrom('plain', 'error', 'null-proto'), fc.subarray(Object.keys(fields))).map(([kind, throwing]) => {
          const target: Record<string, unknown> =
            kind === 'error' ? new Error('generated') : kind === 'null-proto' ? Object.create(null) : {};
          for (const [key, value] of Object.entries(fields)) {
            if (throwing.includes(key)) {
              Object.defineProperty(target, key, {
                enumerable: true,
                get() {
                  throw new Error(`getter ${key} throws`);
                },
              });
            } else {
              Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
            }
          }
          return target;
        }),
      ),
  ),
}));

/** Values that break the usual assumptions: a Proxy throwing on every trap, a getStatus that throws or lies, a cause loop. */
function hostileValues(): [string, unknown][] {
  const throwingProxy = new Proxy(
    {},
    {
      get: () => {
        throw new Error('get');
      },
      has: () => {
        throw new Error('has');
      },
      ownKeys: () => {
        throw new Error('ownKeys');
      },
      getPrototypeOf: () => {
        throw new Error('getPrototypeOf');
      },
      getOwnPropertyDescriptor: () => {
        throw new Error('getOwnPropertyDescriptor');
      },
    },
  );
  const loop: Record<string, unknown> = { message: 'loop' };
  loop.cause = loop;
  const deep = Array.from({ length: 10_000 }).reduce<unknown>((cause) => ({ message: 'wrap', cause }), { code: 'ECONNRESET' });
  return [
    ['a Proxy throwing on every trap', throwingProxy],
    ['a cause loop', loop],
    ['a 10 000-deep cause chain', deep],
    ['a Symbol', Symbol('boom')],
    [
      'a throwing getStatus',
      {
        getStatus: () => {
          throw new Error('nope');
        },
      },
    ],
    ['a getStatus returning a string', { getStatus: () => 'four hundred', status: 'x' }],
    ['a getStatus that is a number', { getStatus: 404 }],
    [
      'an Error whose message is an object with a throwing toString',
      Object.assign(new Error('x'), {
        message: {
          toString: () => {
            throw new Error('toString');
          },
        },
      }),
    ],
    [
      'an AggregateError of 5000 errors',
      new AggregateError(
        Array.from({ length: 5_000 }, (_, i) => new Error(`e${i}`)),
        'many',
      ),
    ],
    ['a function', () => 'a function'],
    ['an HttpException 418', new HttpException('teapot', 418)],
  ];
}

describe('categorizeError (properties)', () => {
  it('never throws and returns a built-in category, for any value', () => {
    fc.assert(
      fc.property(anything, (value) => {
        expect(BUILT_IN).toContain(categorizeError(value));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('never throws and returns a built-in category, for generated error-like objects (fields, causes, throwing getters)', () => {
    fc.assert(
      fc.property(errorLike, (value) => {
        expect(BUILT_IN).toContain(categorizeError(value));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it.each(hostileValues())('returns a built-in category for %s', (_label, value) => {
    expect(BUILT_IN).toContain(categorizeError(value));
  });

  const throwingRules: [string, () => unknown][] = [
    [
      'throws an Error',
      () => {
        throw new Error('rule failed');
      },
    ],
    [
      'throws a string',
      () => {
        throw 'rule failed';
      },
    ],
    [
      'throws undefined',
      () => {
        throw undefined;
      },
    ],
    [
      'overflows the stack',
      function recurse(): unknown {
        return recurse();
      },
    ],
  ];

  it.each(throwingRules)('with a custom rule that %s, returns the same built-in category as without it', (_label, rule) => {
    fc.assert(
      fc.property(fc.oneof(anything, errorLike), (value) => {
        const category = categorizeError(value, rule as never);
        expect(BUILT_IN).toContain(category);
        expect(category).toBe(categorizeError(value));
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('with a custom rule returning anything but a non-empty string, returns the built-in category', () => {
    const notACategory = anything.filter((v) => typeof v !== 'string' || v === '');
    fc.assert(
      fc.property(fc.oneof(anything, errorLike), notACategory, (value, returned) => {
        const category = categorizeError(value, () => returned as never);
        expect(category).toBe(categorizeError(value));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('with a custom rule returning a non-empty string, returns it, cut to 100 characters', () => {
    fc.assert(
      fc.property(fc.oneof(anything, errorLike), fc.string({ minLength: 1, maxLength: 300 }), (value, chosen) => {
        expect(categorizeError(value, () => chosen)).toBe(chosen.slice(0, 100));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('a 4xx HttpException with no provider signal is client_error; any other status never is', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), fc.constantFrom('Not found', 'Validation failed', 'nope'), (code, text) => {
        const category = categorizeError(new HttpException(text, code));
        if (code === 402) expect(category).toBe(ErrorCategory.Quota);
        else if (code >= 400 && code < 500) expect(category).toBe(ErrorCategory.Client);
        else expect(category).toBe(ErrorCategory.Application);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

import fc from 'fast-check';
import { everyKindOfValue } from '../../../../test/support/arbitraries.js';
import { toBoundedJson } from './bounded.js';
import { redactSecrets } from './redact.js';

/** Fixed seed: a failure names its counterexample, and the next run finds the same one. */
const SEED = 77_001;
const RUNS = 200;
/** What one event's custom properties may weigh on the wire, at most. */
const MAX_JSON_LENGTH = 100_000;

const anything = everyKindOfValue({ maxDepth: 6, maxKeys: 30 });

/** `JSON.stringify` of the bounded copy: must not throw, and must be small. */
function serialised(value: unknown, redact?: (text: string) => string): string {
  const json = JSON.stringify(toBoundedJson(value, redact)) ?? '';
  expect(json.length).toBeLessThan(MAX_JSON_LENGTH);
  return json;
}

/** A value no other part of a generated tree can contain: found in the output only if it leaked. */
const MARK = 'zzSECRETzz';
const secretString = fc.string({ minLength: 1, maxLength: 20 }).map((s) => `${MARK}${s}`);
const secretValue = fc.oneof(
  secretString,
  fc.array(secretString, { minLength: 1, maxLength: 3 }),
  fc.dictionary(fc.constantFrom('value', 'raw', 'v'), secretString, { minKeys: 1 }),
  fc
    .integer()
    .map((n) => BigInt(n) * 10n ** 30n + 7777777777n)
    .map((n) => Object.assign(new Error(`${MARK}${n}`), { hint: n })),
);
const sensitiveKey = fc.constantFrom(
  'password',
  'Password',
  'PASSWORD',
  'passwd',
  'pwd',
  'secret',
  'token',
  'access_token',
  'accessToken',
  'refresh_token',
  'id_token',
  'authorization',
  'Authorization',
  'AUTHORIZATION',
  'api_key',
  'apiKey',
  'API-KEY',
  'Api_Key',
  'client_secret',
  'cookie',
  'set-cookie',
  'Set-Cookie',
  'session',
  'private_key',
  'credit_card',
  'cvv',
  'ssn',
);
/** Ordinary keys: never sensitive, never the marker. */
const plainKey = fc.oneof(
  fc.constantFrom('id', 'name', 'data', 'headers', 'body', 'user', 'items', 'meta', 'config'),
  fc.string({ maxLength: 12 }).map((s) => `k_${s}`),
);
const plainLeaf = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.double(),
  fc.date({ noInvalidDate: false }),
);

/** Trees of objects and arrays, with sensitive keys holding secrets at any depth. */
const { tree } = fc.letrec<{ tree: unknown; node: unknown }>((tie) => ({
  tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, plainLeaf, tie('node'), fc.array(tie('tree'), { maxLength: 5 })),
  node: fc
    .tuple(
      fc.dictionary(plainKey, tie('tree'), { maxKeys: 6 }),
      fc.array(fc.tuple(sensitiveKey, secretValue), { minLength: 1, maxLength: 3 }),
      fc.boolean(),
    )
    .map(([plain, sensitive, nullProto]) => {
      const out: Record<string, unknown> = nullProto ? Object.create(null) : {};
      Object.assign(out, plain);
      for (const [key, value] of sensitive) out[key] = value;
      return out;
    }),
}));

describe('toBoundedJson (properties)', () => {
  it('JSON.stringify of the output never throws and stays under 100 kB, for any value', () => {
    fc.assert(
      fc.property(anything, (value) => {
        serialised(value);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('… also with redaction of every string', () => {
    fc.assert(
      fc.property(anything, (value) => {
        serialised(value, redactSecrets);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('never contains the value of a sensitive key, at any depth, under any spelling of the key', () => {
    fc.assert(
      fc.property(tree, (value) => {
        expect(serialised(value)).not.toContain(MARK);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('never contains the value of a sensitive key inside arrays, Maps of objects, or shared and circular structures', () => {
    fc.assert(
      fc.property(tree, tree, (a, b) => {
        const shared: Record<string, unknown> = { a, b, list: [a, b, a] };
        shared.self = shared;
        expect(serialised([shared, shared, { nested: { deeper: shared } }])).not.toContain(MARK);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  // The two below are examples rather than properties so that a failure prints sizes, not a megabyte counterexample.
  /** `count` objects of 100 keys each, every key `keyLength` characters of `fill` (after a unique prefix). */
  function wideObjects(count: number, keyLength: number, fill: string): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (let i = 0; i < count; i++) {
      const inner: Record<string, number> = {};
      for (let j = 0; j < 100; j++) inner[`${i}-${j}-`.padEnd(keyLength, fill)] = j;
      out[`o${i}`] = inner;
    }
    return out;
  }

  it.each<[string, () => unknown]>([
    ['10 objects of 100 keys of 300 characters (keys are not in the character budget)', () => wideObjects(10, 300, 'k')],
    ['10 objects of 100 keys of 300 control characters (keys, escaped ×6)', () => wideObjects(10, 300, '\u0001')],
    [
      '20 strings of 2000 control characters (each escaped to \\u0001: ×6)',
      () => Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`s${i}`, '\u0001'.repeat(2_000)])),
    ],
    [
      '20 strings of 2000 quotes (escaped ×2)',
      () => Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`s${i}`, '"'.repeat(2_000)])),
    ],
    ['an array of 100 strings of 2000 characters', () => Array.from({ length: 100 }, (_, i) => String(i).repeat(2_000))],
  ])('stays under 100 kB of JSON: %s', (_label, make) => {
    const json = JSON.stringify(toBoundedJson(make())) ?? '';
    expect(json.length).toBeLessThan(MAX_JSON_LENGTH);
  });

  it('keeps ordinary keys and values (a sanity check of the generators)', () => {
    const value = { id: 7, name: 'Popcorn', nested: { password: `${MARK}x`, ok: true }, list: [{ token: `${MARK}y`, n: 1 }] };
    expect(toBoundedJson(value)).toEqual({
      id: 7,
      name: 'Popcorn',
      nested: { password: '[REDACTED]', ok: true },
      list: [{ token: '[REDACTED]', n: 1 }],
    });
  });
});

import fc from 'fast-check';
import { SECRET_SHAPES } from '../../../../test/support/secret-shapes.js';
import { GITLEAKS_RULES } from './gitleaks-rules.generated.js';
import { composeRedactor, entropy, isSensitiveKey, MAX_REDACTED_INPUT, redactEmails, redactSecrets } from './redact.js';

/** Fixed seed: a failure names its counterexample, and the next run finds the same one. */
const SEED = 20_240_917;
const RUNS = 300;

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const B64URL = `${ALNUM}-_`;

/** A string of `min`-`max` characters drawn from `alphabet`. */
const chars = (alphabet: string, min: number, max: number) =>
  fc.array(fc.constantFrom(...alphabet), { minLength: min, maxLength: max }).map((a) => a.join(''));

/**
 * One generated secret in its usual setting: `text` is what turns up in an
 * error message, `secrets` the parts of it that must never leave the process.
 */
interface Shape {
  text: string;
  secrets: string[];
}

const shapes: [string, fc.Arbitrary<Shape>][] = [
  ['Bearer <token>', chars(`${ALNUM}-._~+/`, 16, 64).map((t) => ({ text: `Bearer ${t}`, secrets: [t] }))],
  ['phc_<32 alnum>', chars(ALNUM, 32, 32).map((k) => ({ text: `phc_${k}`, secrets: [k] }))],
  ['phx_<key>', chars(ALNUM, 20, 48).map((k) => ({ text: `phx_${k}`, secrets: [k] }))],
  ['sk-<key>', chars(`${ALNUM}_-`, 20, 64).map((k) => ({ text: `sk-${k}`, secrets: [k] }))],
  ['sk-ant-<key>', chars(`${ALNUM}_-`, 20, 90).map((k) => ({ text: `sk-ant-api03-${k}`, secrets: [k] }))],
  ['AKIA<16 upper alnum>', chars(UPPER_ALNUM, 16, 16).map((k) => ({ text: `AKIA${k}`, secrets: [`AKIA${k}`] }))],
  [
    'JWT',
    fc.tuple(chars(B64URL, 10, 60), chars(B64URL, 10, 120), chars(B64URL, 16, 86)).map(([h, p, s]) => ({
      text: `eyJ${h}.eyJ${p}.${s}`,
      secrets: [`eyJ${p}`, s],
    })),
  ],
  [
    'https://user:pass@host/path',
    fc
      .tuple(chars(ALNUM, 6, 16), chars(`${ALNUM}-._~!$*+`, 8, 32), chars('abcdefghijklmnopqrstuvwxyz', 3, 12))
      .map(([user, pass, host]) => ({
        text: `https://${user}:${pass}@${host}.example.com/v1/items`,
        secrets: [pass],
      })),
  ],
  [
    'https://host/path?token=<x>&email=<e>',
    fc.tuple(chars(ALNUM, 12, 40), chars('abcdefghijklmnopqrstuvwxyz0123456789', 8, 16)).map(([token, local]) => ({
      text: `https://api.example.com/v1/users?token=${token}&email=${local}@mail.example.org`,
      secrets: [token, `${local}@`],
    })),
  ],
  ['password=<x>', chars(`${ALNUM}!#$%*+-./:=?@^_~`, 8, 40).map((p) => ({ text: `password=${p}`, secrets: [p] }))],
  ['"api_key": "<x>"', chars(`${ALNUM}-_.`, 12, 48).map((k) => ({ text: `"api_key": "${k}"`, secrets: [k] }))],
];

/** Random text on both sides, separated by a space, as a secret sits in a sentence or a stack frame. */
const surrounding = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 60 }));
const embedded = (shape: fc.Arbitrary<Shape>) =>
  fc.tuple(surrounding, shape, surrounding).map(([before, s, after]) => ({ ...s, text: `${before} ${s.text} ${after}` }));

const anyShape = fc.oneof(...shapes.map(([, arb]) => arb));

describe('redactSecrets', () => {
  describe('examples', () => {
    it.each<[string, string, string]>([
      ['a Bearer token', 'request failed: Authorization: Bearer abc123DEF456ghi789', 'abc123DEF456ghi789'],
      ['a Basic credential', 'sent Basic dXNlcjpwYXNzd29yZA== to upstream', 'dXNlcjpwYXNzd29yZA'],
      ['a PostHog project key', 'invalid key phc_0123456789abcdefABCDEF0123456789', '0123456789abcdefABCDEF0123456789'],
      ['a PostHog personal key', 'personal key phx_AbCdEfGh12345678IjKl rejected', 'AbCdEfGh12345678IjKl'],
      ['an OpenAI key', 'Incorrect API key provided: sk-proj-Ab12Cd34Ef56Gh78Ij90', 'Ab12Cd34Ef56Gh78Ij90'],
      ['an Anthropic key', 'x-api-key sk-ant-api03-AbCdEf123456_GhIjKl-789', 'AbCdEf123456_GhIjKl-789'],
      ['an AWS access key id', 'The AWS Access Key Id AKIAIOSFODNN7EXAMPLE does not exist', 'AKIAIOSFODNN7EXAMPLE'],
      [
        'a JWT',
        'jwt malformed: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
        'eyJzdWIiOiIxMjM0NTY3ODkwIn0',
      ],
      ['credentials in a URL', 'connect ECONNREFUSED postgres://app:s3cr3t-Pa55@db.internal:5432/app', 's3cr3t-Pa55'],
      ['credentials in an https URL', 'GET https://admin:hunter2hunter2@example.com/path failed', 'hunter2hunter2'],
      ['a token in a query string', 'fetch https://api.example.com/v1/users?token=tok_1234567890&page=2 failed', 'tok_1234567890'],
      ['an email in a query string', 'GET https://api.example.com/lookup?email=jane.doe@example.org: 404', 'jane.doe@example.org'],
      ['password=', 'login failed with password=correct-horse-battery', 'correct-horse-battery'],
      ['a JSON api_key', 'body: {"api_key": "k_live_0123456789", "id": 4}', 'k_live_0123456789'],
      ['a JSON password', "config {'password': 'p@ss-word-99'}", 'p@ss-word-99'],
      ['client_secret=', 'oauth: client_secret=abcdef0123456789 invalid', 'abcdef0123456789'],
      ['a Stripe key', 'No such customer; key sk_live_51Habcdefghijklmnop', '51Habcdefghijklmnop'],
      ['a GitHub token', 'Bad credentials ghp_abcdefghijklmnopqrstuvwxyz0123456789', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789'],
      ['a Slack token', 'invalid_auth xoxb-1234567890-abcdefghij', 'xoxb-1234567890-abcdefghij'],
    ])('removes %s', (_label, text, secret) => {
      expect(text).toContain(secret);
      const out = redactSecrets(text);
      expect(out).not.toContain(secret);
      expect(out).toMatch(/\[REDACTED\]|\[query removed\]/);
    });

    it.each<[string, string, string]>([
      ['Bearer', 'upstream said Bearer abc123DEF456ghi789 expired', 'upstream said Bearer [REDACTED] expired'],
      ['an Authorization header line', 'Authorization: Bearer abc123DEF456ghi789', 'Authorization: [REDACTED] [REDACTED]'],
      ['phc_', 'key phc_0123456789abcdefABCDEF0123456789 bad', 'key phc_[REDACTED] bad'],
      ['sk-', 'key sk-Ab12Cd34Ef56Gh78Ij90 bad', 'key sk-[REDACTED] bad'],
      ['URL credentials', 'postgres://app:s3cret@db:5432/app', 'postgres://[REDACTED]@db:5432/app'],
      ['a query string', 'GET https://example.com/a/b?x=1&y=2 failed', 'GET https://example.com/a/b?[query removed] failed'],
      ['password=', 'password=hunter2 rejected', 'password=[REDACTED] rejected'],
    ])('keeps what identifies the kind of secret (%s)', (_label, text, expected) => {
      expect(redactSecrets(text)).toBe(expected);
    });

    it.each<[string, string]>([
      [
        'a normal stack trace',
        [
          "TypeError: Cannot read properties of undefined (reading 'id')",
          '    at ItemsService.find (/app/dist/items/items.service.js:42:17)',
          '    at async ItemsController.get (/app/dist/items/items.controller.js:18:5)',
          '    at async /app/node_modules/@nestjs/core/router/router-execution-context.js:46:28',
          '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
          '    at file:///app/dist/main.js:12:3',
        ].join('\n'),
      ],
      ['a TypeError message', "Cannot read properties of undefined (reading 'id')"],
      ['a URL without query', 'GET https://api.example.com/v1/items/42 failed with 503'],
      ['a Nest message', 'Validation failed (numeric string is expected)'],
      ['a socket error', 'connect ECONNREFUSED 127.0.0.1:5432'],
      ['an email outside a URL', 'No account for jane@example.org'],
      ['a uuid', 'Order 019a3b6b-634f-72e5-a430-d105b888fb87 not found'],
      ['the empty string', ''],
    ])('leaves ordinary text unchanged: %s', (_label, text) => {
      expect(redactSecrets(text)).toBe(text);
    });

    it('is idempotent on a URL with a query string ("[query removed]" is not itself a query)', () => {
      const once = redactSecrets('GET https://api.example.com/v1/users?token=abc123456789&email=a@b.c failed');
      expect(once).toBe('GET https://api.example.com/v1/users?[query removed] failed');
      expect(redactSecrets(once)).toBe(once);
    });

    it.each([
      'password',
      'PASSWORD',
      'api_key',
      'API-KEY',
      'apiKey',
      'Authorization',
      'access_token',
      'set-cookie',
      'client_secret',
      'db_password',
      'newPassword',
      'x-api-key',
      'stripeApiKey',
    ])('isSensitiveKey(%j)', (key) => expect(isSensitiveKey(key)).toBe(true));
    // Names that merely contain "password" (passwordPolicy) are redacted too: a false positive costs less than a leak.
    it.each(['id', 'name', 'email', 'status', 'message', 'tokens_used', 'token_count'])('not isSensitiveKey(%j)', (key) =>
      expect(isSensitiveKey(key)).toBe(false),
    );
  });

  describe('properties', () => {
    it('never throws, for any string (ASCII, UTF-16 with lone surrogates, long)', () => {
      for (const arb of [
        fc.string({ maxLength: 500 }),
        fc.string({ unit: 'binary', maxLength: 500 }),
        fc.string({ unit: 'grapheme', maxLength: 200 }),
      ]) {
        fc.assert(
          fc.property(arb, (s) => typeof redactSecrets(s) === 'string'),
          { seed: SEED, numRuns: RUNS },
        );
      }
    });

    it('stays fast on long adversarial input (no catastrophic backtracking)', () => {
      const adversarial = [
        'a'.repeat(20_000),
        'https://'.repeat(2_000),
        `Bearer ${'a'.repeat(20_000)}`,
        `${'password='.repeat(2_000)}`,
        `http://${'a:'.repeat(5_000)}`,
        `eyJ${'a'.repeat(10_000)}.eyJ${'a'.repeat(10_000)}`,
      ];
      for (const text of adversarial) {
        const started = performance.now();
        redactSecrets(text);
        expect(performance.now() - started).toBeLessThan(1_000);
      }
    });

    it('stays linear on long runs of scheme-like characters (a.b.c…, x-y-z…)', () => {
      // The URL-credentials pattern `\b([a-z][a-z0-9+.-]*:\/\/)…` starts again at every word boundary and
      // scans to the end of the run each time: quadratic. 40 000 characters take ~1.3 s; a linear scan, ~1 ms.
      // With the default traceback limit a 5 kB run echoed in an error message costs ~30 ms of event loop per request.
      for (const text of ['a.'.repeat(20_000), 'x-'.repeat(20_000), 'v1.2.3-'.repeat(6_000)]) {
        const started = performance.now();
        redactSecrets(text);
        expect(performance.now() - started).toBeLessThan(100);
      }
    });

    it('is idempotent on any string', () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => redactSecrets(redactSecrets(s)) === redactSecrets(s)),
        { seed: SEED, numRuns: RUNS },
      );
    });

    it('is idempotent on text carrying secrets of every shape', () => {
      const texts = fc.array(embedded(anyShape), { minLength: 1, maxLength: 3 }).map((parts) => parts.map((p) => p.text).join('\n'));
      fc.assert(
        fc.property(texts, (s) => {
          const once = redactSecrets(s);
          expect(redactSecrets(once)).toBe(once);
        }),
        { seed: SEED, numRuns: RUNS },
      );
    });

    describe.each(shapes)('a generated %s in random text never survives', (_label, shape) => {
      it('alone', () => {
        fc.assert(
          fc.property(shape, ({ text, secrets }) => {
            const out = redactSecrets(text);
            for (const secret of secrets) expect(out).not.toContain(secret);
          }),
          { seed: SEED, numRuns: RUNS },
        );
      });

      it('embedded in random text', () => {
        fc.assert(
          fc.property(embedded(shape), ({ text, secrets }) => {
            const out = redactSecrets(text);
            for (const secret of secrets) expect(out).not.toContain(secret);
          }),
          { seed: SEED, numRuns: RUNS },
        );
      });
    });

    it('several secrets of different shapes on one line all go', () => {
      fc.assert(
        fc.property(fc.array(anyShape, { minLength: 2, maxLength: 5 }), (parts) => {
          const out = redactSecrets(parts.map((p) => p.text).join(' and '));
          for (const secret of parts.flatMap((p) => p.secrets)) expect(out).not.toContain(secret);
        }),
        { seed: SEED, numRuns: RUNS },
      );
    });
  });
});

describe('redactSecrets: the shapes of issue 13', () => {
  it('has at least 60 shapes', () => expect(SECRET_SHAPES.length).toBeGreaterThanOrEqual(60));

  it.each(SECRET_SHAPES.map((s) => [s.name, s] as const))('removes %s', (_name, shape) => {
    const out = redactSecrets(`before ${shape.text} after`);
    expect(out).not.toContain(shape.secret);
    for (const line of shape.secret.split(/\n|\\n/)) if (line.length >= 12) expect(out).not.toContain(line);
    expect(out).toMatch(/\[REDACTED\]|\[query removed\]/);
    expect(out.startsWith('before ')).toBe(true);
  });

  it('removes all of them at once, in any order, and is idempotent', () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(SECRET_SHAPES, { minLength: 1, maxLength: 12 }), (shapes) => {
        const out = redactSecrets(shapes.map((s) => s.text).join(' | '));
        for (const shape of shapes) expect(out).not.toContain(shape.secret);
        expect(redactSecrets(out)).toBe(out);
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('redacts a short Bearer token whole, after Authorization:', () => {
    expect(redactSecrets('Authorization: Bearer abc123def456')).toBe('Authorization: [REDACTED] [REDACTED]');
  });

  it.each([
    'Token validation failed',
    'Basic authentication required',
    'Bearer token missing',
    'Order 019a3b6b-634f-72e5-a430-d105b888fb87 not found',
    'x-request-id: 019a3b6b-634f-72e5-a430-d105b888fb87',
    'error code E_TIMEOUT_12 (ECONNRESET)',
    'code: ERR_INVALID_ARG_TYPE',
    'Cache key: users:list:page-2',
    'session: expired',
    'authorization: denied by policy',
    'password must be at least 8 characters',
    'token_count=1234',
    'timestamp 1732946400000',
    'commit 3f786850e387550fdab836ed7e6dc881de23001b',
    'https://registry.npmjs.org/@nestjs/core/-/core-12.5.1.tgz',
    'https://api.example.com:8443/v1/items',
    '    at Object.<anonymous> (/home/runner/work/app/node_modules/.pnpm/@nestjs+core@12.5.1_@nestjs+common@12.5.1/node_modules/@nestjs/core/router.js:1:1)',
    'at AbstractVeryLongControllerNameForTesting2.handleRequestWithRetries3 (/app/dist/x.js:1:1)',
  ])('does not over-redact: %s', (text) => expect(redactSecrets(text)).toBe(text));

  it('reads at most MAX_REDACTED_INPUT characters, whatever the length (no pattern sees more)', () => {
    const out = redactSecrets('http://'.repeat(100_000));
    expect(out.length).toBeLessThan(MAX_REDACTED_INPUT + 100);
    expect(out).toMatch(/… \[\d+ chars not read\]$/);
    expect(redactSecrets('a'.repeat(MAX_REDACTED_INPUT))).toBe('a'.repeat(MAX_REDACTED_INPUT));
  });

  it('does not keep half a secret where it cuts', () => {
    const secret = `ghp_${'A1b2C3d4E5'.repeat(4)}`;
    const text = `${'word '.repeat(Math.floor((MAX_REDACTED_INPUT - 20) / 5))}${secret} tail`;
    expect(redactSecrets(text)).not.toContain(secret.slice(0, 12));
  });

  it("compiles every one of gitleaks' rules, each with every repetition bounded", () => {
    expect(GITLEAKS_RULES.length).toBeGreaterThanOrEqual(200);
    for (const rule of GITLEAKS_RULES) {
      expect(() => new RegExp(rule.source, rule.flags + 'd')).not.toThrow();
      // No unbounded quantifier outside a character class: `+`, `*` and `{n,}` were all given an upper bound.
      const outsideClasses = rule.source.replace(/\\./g, '').replace(/\[[^\]]*\]/g, '');
      expect(outsideClasses).not.toMatch(/[+*]|\{\d+,\}/);
    }
  });

  it('measures entropy in bits per character', () => {
    expect(entropy('')).toBe(0);
    expect(entropy('aaaa')).toBe(0);
    expect(entropy('abcd')).toBe(2);
  });
});

describe('redactEmails', () => {
  it('replaces addresses, only when asked', () => {
    const text = 'no account for ann.lee+test@mail.example.co.uk (retry as bob@example.com)';
    expect(redactEmails(text)).toBe('no account for [email] (retry as [email])');
    expect(composeRedactor(undefined, () => undefined, true)(text)).toBe('no account for [email] (retry as [email])');
    expect(composeRedactor(undefined, () => undefined)(text)).toBe(text);
  });
});

describe('composeRedactor with patterns', () => {
  it('replaces every match of each pattern, after the built-in redaction', () => {
    const redact = composeRedactor([/cust_\d+/, /order-[a-z]+/gi], () => undefined);
    expect(redact('cust_123 bought ORDER-abc and cust_456, key phc_abcdefghij1234')).toBe(
      '[REDACTED] bought [REDACTED] and [REDACTED], key phc_[REDACTED]',
    );
  });
});

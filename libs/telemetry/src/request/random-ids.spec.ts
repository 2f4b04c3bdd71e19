import { randomHex, randomUuid } from './random-ids.js';

describe('random ids', () => {
  it('makes UUID v4 texts as crypto.randomUUID does: lowercase, version 4, RFC 9562 variant, all different', () => {
    const seen = new Set<string>();
    // More than one pool of randomness (4 KiB), so refills are crossed.
    for (let i = 0; i < 1000; i++) {
      const uuid = randomUuid();
      expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      seen.add(uuid);
    }
    expect(seen.size).toBe(1000);
  });

  it('spreads every random digit over the sixteen hex digits', () => {
    const digits = Array.from({ length: 36 }, () => new Set<string>());
    for (let i = 0; i < 2000; i++) {
      const uuid = randomUuid();
      for (let at = 0; at < 36; at++) digits[at].add(uuid[at]);
    }
    const fixed = new Set([8, 13, 14, 18, 19, 23]); // the dashes, the version and the variant digit
    for (let at = 0; at < 36; at++) if (!fixed.has(at)) expect(digits[at].size).toBe(16);
  });

  it('spreads the variant digit evenly over its four values', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const digit = randomUuid()[19];
      counts.set(digit, (counts.get(digit) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['8', '9', 'a', 'b']);
    // 1000 each expected; a digit taken from two biased bits (a hex character's code) is off by a quarter or more.
    for (const count of counts.values()) expect(Math.abs(count - 1000)).toBeLessThan(150);
  });

  it('makes trace and span ids of 32 and 16 hex digits, all different', () => {
    const traces = new Set<string>();
    const spans = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const trace = randomHex(16);
      const span = randomHex(8);
      expect(trace).toMatch(/^[0-9a-f]{32}$/);
      expect(span).toMatch(/^[0-9a-f]{16}$/);
      traces.add(trace);
      spans.add(span);
    }
    expect(traces.size).toBe(500);
    expect(spans.size).toBe(500);
  });
});

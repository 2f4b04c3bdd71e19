import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { isValidRequestId, resolveRequestId } from './request-id.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const VALID = /^[A-Za-z0-9\-_.:]{1,128}$/;

describe('resolveRequestId', () => {
  it.each<[string, string]>([
    ['a UUID', randomUUID()],
    ['letters, digits and -_.:', 'abc-123_x.y:z'],
    ['a single character', 'A'],
    ['exactly 128 characters', 'r'.repeat(128)],
    ['a W3C-ish trace id', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
  ])('keeps %s', (_label, id) => {
    expect(isValidRequestId(id)).toBe(true);
    expect(resolveRequestId(id)).toBe(id);
  });

  it.each<[string, unknown]>([
    ['129 characters', 'r'.repeat(129)],
    ['an empty string', ''],
    ['a space', ' '],
    ['inner spaces', 'abc def'],
    ['a leading space', ' abc'],
    ['a trailing newline', 'abc\n'],
    ['a NUL byte', 'abc\u0000def'],
    ['DEL', 'abc\u007f'],
    ['a tab', 'abc\tdef'],
    ['unicode letters', 'héllo'],
    ['CJK', '日本語'],
    ['an emoji', 'id-😀'],
    ['a CRLF header injection attempt', 'abc\r\nSet-Cookie: session=evil'],
    ['HTML', '<script>alert(1)</script>'],
    ['the comma-joined repeated header', 'a, b'],
    ['a comma without space', 'a,b'],
    ['an array (repeated header)', ['abc', 'def']],
    ['a one-element array', ['abc']],
    ['undefined', undefined],
    ['null', null],
    ['a number', 12345],
    ['an object', { id: 'abc' }],
  ])('replaces %s by a fresh UUID v4', (_label, header) => {
    expect(isValidRequestId(header)).toBe(false);
    const first = resolveRequestId(header);
    const second = resolveRequestId(header);
    expect(first).toMatch(UUID_V4);
    expect(second).toMatch(UUID_V4);
    expect(first).not.toBe(second);
    expect(first).not.toBe(header);
  });

  const check = (input: unknown): boolean => {
    const out = resolveRequestId(input);
    if (typeof input === 'string' && VALID.test(input)) return out === input;
    return out !== input && UUID_V4.test(out);
  };

  it('property: any string comes back unchanged exactly when it is valid, else as a fresh UUID v4', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), check), { numRuns: 2000 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), check), { numRuns: 2000 });
  });

  it('property: valid-looking strings near the boundaries (0-140 allowed characters, one odd character inserted)', () => {
    const allowed = fc.constantFrom(...'ABCXYZabcxyz0189-_.:');
    const validish = fc.array(allowed, { minLength: 0, maxLength: 140 }).map((chars) => chars.join(''));
    fc.assert(fc.property(validish, check), { numRuns: 2000 });
    const withOdd = fc
      .tuple(validish, fc.string({ unit: 'binary', minLength: 1, maxLength: 2 }), fc.nat())
      .map(([s, odd, at]) => s.slice(0, at % (s.length + 1)) + odd + s.slice(at % (s.length + 1)));
    fc.assert(fc.property(withOdd, check), { numRuns: 2000 });
  });

  it('property: any non-string value gets a fresh UUID v4', () => {
    fc.assert(
      fc.property(
        fc.anything().filter((v) => typeof v !== 'string'),
        (value) => UUID_V4.test(resolveRequestId(value)),
      ),
      { numRuns: 500 },
    );
  });
});

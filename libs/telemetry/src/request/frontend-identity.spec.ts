import { frontendDistinctId } from './frontend-identity.js';

describe('frontendDistinctId', () => {
  const uuidV7 = '0193a5b2-7c4e-7d1f-9a2b-3c4d5e6f7a8b';
  const uuidt = '18c1a2b3c4d5e6-0a1b2c3d4e5f60-4c0d2b3a-1fa400-18c1a2b3c4d5e7';

  it('takes the shapes posthog-js gives anonymous visitors, by default', () => {
    expect(frontendDistinctId(uuidV7, 'anonymous')).toBe(uuidV7);
    expect(frontendDistinctId(uuidt, 'anonymous')).toBe(uuidt);
  });

  it("refuses an identified person's id claimed by an anonymous request, by default", () => {
    for (const claim of ['user-123', 'alice@example.com', '42', 'admin', `${uuidV7}x`, `x${uuidV7}`]) {
      expect(frontendDistinctId(claim, 'anonymous')).toBeUndefined();
    }
  });

  it('takes any usable id when trusted, none when ignored', () => {
    expect(frontendDistinctId('user-123', 'trusted')).toBe('user-123');
    expect(frontendDistinctId(uuidV7, 'ignored')).toBeUndefined();
    expect(frontendDistinctId(undefined, 'trusted')).toBeUndefined();
  });
});

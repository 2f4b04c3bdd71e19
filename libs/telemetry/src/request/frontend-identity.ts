/**
 * What the frontend's `X-POSTHOG-DISTINCT-ID` may do for a request no user is
 * known for. Any client can send any value in it, so by default a claim is
 * taken only in the shape of an id posthog-js makes for an anonymous visitor
 * (random, so unguessable), and its events are personless: an identified
 * person's id (an email, `user-123`) cannot be claimed, and a claim never
 * creates or updates a person profile.
 *
 * - `anonymous` (default): as above.
 * - `trusted`: any usable id, with person processing: for a frontend whose
 *   requests reach the app only through its own authenticating proxy.
 * - `ignored`: the header is never used.
 *
 * An authenticated user always wins over the header.
 */
export type FrontendIdentityPolicy = 'anonymous' | 'trusted' | 'ignored';

export const FRONTEND_IDENTITY_POLICIES: readonly FrontendIdentityPolicy[] = ['anonymous', 'trusted', 'ignored'];

/** posthog-js's anonymous ids: UUIDs (v7), or its older time-based UUIDT: hex groups joined by dashes. */
const ANONYMOUS_ID = /^[0-9a-f]{8,16}(?:-[0-9a-f]{4,16}){3,4}$/i;

/** The frontend distinct id a request may use under `policy`, or `undefined`. `value` is already a usable header value. */
export function frontendDistinctId(value: string | undefined, policy: FrontendIdentityPolicy): string | undefined {
  if (value === undefined || policy === 'ignored') return undefined;
  if (policy === 'anonymous' && !ANONYMOUS_ID.test(value)) return undefined;
  return value;
}

/**
 * Where an error's ids lead outside the explorer, when configured:
 * `EXPLORER_SENTRY_URL` (your organisation's Sentry, e.g. `https://my-org.sentry.io`)
 * for `sentry_event_id`, and `EXPLORER_POSTHOG_URL` (a PostHog project, e.g.
 * `https://us.posthog.com/project/12345`) for `$exception_uuid`. The page fills
 * `{id}` in the templates it is given.
 */
export interface OutboundLinks {
  sentry_event: string | null;
  posthog_event: string | null;
}

const base = (value: string | undefined): string | null => {
  const text = value?.trim();
  if (!text) return null;
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href.replace(/\/+$/, '') : null;
  } catch {
    return null;
  }
};

export function outboundLinks(env: NodeJS.ProcessEnv = process.env): OutboundLinks {
  const sentry = base(env.EXPLORER_SENTRY_URL);
  const posthog = base(env.EXPLORER_POSTHOG_URL);
  return {
    // Sentry finds an event by its id from the issue search.
    sentry_event: sentry ? `${sentry}/issues/?query={id}` : null,
    // PostHog opens one event by its uuid.
    posthog_event: posthog ? `${posthog}/events/{id}` : null,
  };
}

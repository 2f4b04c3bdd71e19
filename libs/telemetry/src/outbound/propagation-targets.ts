/** Which outgoing calls carry the operation's ids (`propagateTo`): see `TelemetryModuleOptions.propagateTo`. */
export type PropagateTo = (string | RegExp)[] | ((url: string) => boolean);

/** `host[:port]` of a URL, lowercase, or `undefined`. */
function hostOf(url: string): { hostname: string; host: string; origin: string } | undefined {
  try {
    const parsed = new URL(url);
    return {
      hostname: parsed.hostname.toLowerCase().replace(/^\[|\]$/g, ''),
      host: parsed.host.toLowerCase(),
      origin: parsed.origin.toLowerCase(),
    };
  } catch {
    return undefined;
  }
}

/** One `propagateTo` string against a URL: a host name, `*.domain` (the domain and its subdomains), `host:port`, or a URL prefix (with `://`). */
function matchesString(rule: string, url: string, target: NonNullable<ReturnType<typeof hostOf>>): boolean {
  const wanted = rule.trim().toLowerCase();
  if (wanted.includes('://')) return url.toLowerCase().startsWith(wanted);
  if (wanted.startsWith('*.')) {
    const domain = wanted.slice(2);
    return target.hostname === domain || target.hostname.endsWith('.' + domain);
  }
  return wanted.includes(':') && !wanted.startsWith('[') && wanted.split(':').length === 2
    ? target.host === wanted
    : target.hostname === wanted.replace(/^\[|\]$/g, '');
}

/**
 * The test deciding whether a call to `url` carries the ids: never to the hosts `never` names (the
 * module's own PostHog and Sentry), else as `propagateTo` says (default: every host). A rule that
 * throws says no. Never throws.
 */
export function propagationTargets(propagateTo: PropagateTo | undefined, never: () => (string | undefined)[]): (url: string) => boolean {
  return (url) => {
    try {
      const target = hostOf(url);
      if (!target) return false;
      for (const origin of never()) if (origin !== undefined && hostOf(origin)?.host === target.host) return false;
      if (propagateTo === undefined) return true;
      if (typeof propagateTo === 'function') return propagateTo(url) === true;
      return propagateTo.some((rule) => {
        if (typeof rule === 'string') return matchesString(rule, url, target);
        rule.lastIndex = 0;
        return rule.test(url);
      });
    } catch {
      return false;
    }
  };
}

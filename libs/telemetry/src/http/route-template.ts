/** The one `endpoint` value shared by every request that matched no route (404s from scanners, typos). */
export const UNMATCHED_ROUTE = '(unmatched)';

/**
 * The route template (`/items/:id`) of a request, never its raw path.
 * Duck-typed so the core needs no adapter types: Fastify exposes
 * `request.routeOptions.url`, Express `request.route.path` (plus `baseUrl`).
 */
/** What Fastify's and Express's requests say of their route. */
interface RouteCarrier {
  routeOptions?: { url?: unknown };
  route?: { path?: unknown };
  baseUrl?: unknown;
}

export function routeTemplateOf(request: unknown): string | undefined {
  const adapterRequest = request as RouteCarrier | null | undefined;
  const fastifyUrl = adapterRequest?.routeOptions?.url;
  if (typeof fastifyUrl === 'string') return fastifyUrl;
  const expressPath = adapterRequest?.route?.path;
  // Under a global prefix, Nest's Express adapter answers unknown routes from a route of its own,
  // `*path` on a router mounted at the prefix. The app's routes always start with a slash.
  if (typeof expressPath === 'string' && expressPath.startsWith('/')) {
    const base = typeof adapterRequest?.baseUrl === 'string' ? adapterRequest.baseUrl : '';
    return base + expressPath;
  }
  return undefined;
}

/** Path of a raw URL without query string or fragment. */
export function pathOf(url: string | undefined): string {
  if (!url) return '/';
  // Two scans for a character rather than a regular expression: this runs for every request.
  const query = url.indexOf('?');
  const fragment = url.indexOf('#');
  const cut = query === -1 ? fragment : fragment === -1 ? query : Math.min(query, fragment);
  return cut === -1 ? url : url.slice(0, cut);
}

/**
 * `redact` after the request's raw URL, its path and its query string are
 * replaced by the route template wherever they appear (Nest's `Cannot GET
 * /reset-password/8f14?token=…`, an error that quotes the URL): ids and query
 * values stay out of error events.
 */
export function withoutRawUrl(redact: (text: string) => string, rawUrl: string | undefined, endpoint: string): (text: string) => string {
  if (!rawUrl || rawUrl === '/') return redact;
  const path = pathOf(rawUrl);
  const query = rawUrl.slice(path.length);
  const parts = [rawUrl, path, query].filter((part, i, all) => part.length > 1 && all.indexOf(part) === i);
  return (text) => {
    let out = text;
    for (const part of parts) if (out.includes(part)) out = out.split(part).join(endpoint);
    return redact(out);
  };
}

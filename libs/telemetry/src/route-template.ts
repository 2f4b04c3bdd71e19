/** The one `endpoint` value shared by every request that matched no route (404s from scanners, typos). */
export const UNMATCHED_ROUTE = '(unmatched)';

/**
 * The route template (`/items/:id`) of a request, never its raw path.
 * Duck-typed so the core needs no adapter types: Fastify exposes
 * `request.routeOptions.url`, Express `request.route.path` (plus `baseUrl`).
 */
export function routeTemplateOf(request: any): string | undefined {
  const fastifyUrl = request?.routeOptions?.url;
  if (typeof fastifyUrl === 'string') return fastifyUrl;
  const expressPath = request?.route?.path;
  if (typeof expressPath === 'string') {
    const base = typeof request.baseUrl === 'string' ? request.baseUrl : '';
    return base + expressPath;
  }
  return undefined;
}

/** Path of a raw URL without query string or fragment. */
export function pathOf(url: string | undefined): string {
  if (!url) return '/';
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}

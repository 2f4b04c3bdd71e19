import { pathOf, routeTemplateOf, UNMATCHED_ROUTE } from './route-template.js';

describe('routeTemplateOf', () => {
  it('reads a Fastify request (routeOptions.url)', () => {
    const request = { url: '/items/42?x=1', routeOptions: { url: '/items/:id', method: 'GET' } };
    expect(routeTemplateOf(request)).toBe('/items/:id');
  });

  it('prefers Fastify routeOptions over an Express-like route', () => {
    const request = { routeOptions: { url: '/fastify/:id' }, route: { path: '/express/:id' }, baseUrl: '/base' };
    expect(routeTemplateOf(request)).toBe('/fastify/:id');
  });

  it('reads an Express request (baseUrl + route.path)', () => {
    const request = { originalUrl: '/api/v1/items/42', baseUrl: '/api/v1', route: { path: '/items/:id' } };
    expect(routeTemplateOf(request)).toBe('/api/v1/items/:id');
  });

  it('reads an Express request without baseUrl', () => {
    expect(routeTemplateOf({ route: { path: '/items/:id' } })).toBe('/items/:id');
    expect(routeTemplateOf({ route: { path: '/items/:id' }, baseUrl: undefined })).toBe('/items/:id');
  });

  it("does not take Nest's not-found route under a global prefix (`*path` on a router at the prefix) for a match", () => {
    expect(
      routeTemplateOf({ baseUrl: '/api', route: { path: '*path' }, originalUrl: '/api/v1/reset-password/8f14?session=s3cr3t' }),
    ).toBeUndefined();
  });

  it('never returns the raw path', () => {
    const request = { url: '/items/42', originalUrl: '/items/42', path: '/items/42' };
    expect(routeTemplateOf(request)).toBeUndefined();
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['an empty object', {}],
    ['a non-string Fastify url', { routeOptions: { url: 42 } }],
    ['a RegExp Express path', { route: { path: /^\/items/ } }],
    ['an array Express path', { route: { path: ['/a', '/b'] } }],
  ])('is undefined for %s', (_label, request) => {
    expect(routeTemplateOf(request)).toBeUndefined();
  });

  it('exports the unmatched-route marker', () => {
    expect(UNMATCHED_ROUTE).toBe('(unmatched)');
  });
});

describe('pathOf', () => {
  it.each<[string | undefined, string]>([
    ['/items/1', '/items/1'],
    ['/items/1?x=1&y=2', '/items/1'],
    ['/items/1#section', '/items/1'],
    ['/items/1?x=1#frag', '/items/1'],
    ['/items/1#frag?x=1', '/items/1'],
    ['/search?q=a/b', '/search'],
    ['/?x', '/'],
    ['', '/'],
    [undefined, '/'],
  ])('%j → %j', (url, expected) => {
    expect(pathOf(url)).toBe(expected);
  });
});

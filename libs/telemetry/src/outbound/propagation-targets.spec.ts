import { propagationTargets } from './propagation-targets.js';

const none = () => [];

describe('propagationTargets', () => {
  it('allows every host by default, but never the module’s PostHog and Sentry hosts', () => {
    const allowed = propagationTargets(undefined, () => ['https://us.i.posthog.com', 'http://127.0.0.1:9000', undefined]);
    expect(allowed('https://api.example.com/x')).toBe(true);
    expect(allowed('https://us.i.posthog.com/batch/')).toBe(false);
    expect(allowed('http://127.0.0.1:9000/api/1/envelope/')).toBe(false);
    expect(allowed('http://127.0.0.1:9001/')).toBe(true);
    expect(allowed('not a url')).toBe(false);
  });

  it.each<[string, string, boolean]>([
    ['api.internal', 'http://api.internal/x', true],
    ['api.internal', 'http://api.internal:8080/x', true],
    ['api.internal', 'http://other.internal/x', false],
    ['API.Internal', 'http://api.internal/x', true],
    ['*.example.com', 'https://example.com/', true],
    ['*.example.com', 'https://a.b.example.com/', true],
    ['*.example.com', 'https://badexample.com/', false],
    ['127.0.0.1:3000', 'http://127.0.0.1:3000/', true],
    ['127.0.0.1:3000', 'http://127.0.0.1:3001/', false],
    ['https://api.example.com/v2/', 'https://api.example.com/v2/users', true],
    ['https://api.example.com/v2/', 'https://api.example.com/v1/users', false],
  ])('%s against %s: %s', (rule, url, expected) => {
    expect(propagationTargets([rule], none)(url)).toBe(expected);
  });

  it('tests regular expressions on the whole URL, whatever their flags', () => {
    const allowed = propagationTargets([/^https:\/\/[^/]*\.corp\//g], none);
    expect(allowed('https://svc.corp/a')).toBe(true);
    expect(allowed('https://svc.corp/a')).toBe(true);
    expect(allowed('https://svc.com/a')).toBe(false);
  });

  it('asks a function, and takes a throwing one as no', () => {
    expect(propagationTargets((url) => url.includes('ok'), none)('http://ok/')).toBe(true);
    expect(propagationTargets((url) => url.includes('ok'), none)('http://no/')).toBe(false);
    expect(
      propagationTargets(() => {
        throw new Error('rule');
      }, none)('http://ok/'),
    ).toBe(false);
  });
});

describe('propagation options', () => {
  it('propagates to every host by default, and copies a list given', async () => {
    const { resolveTelemetryOptions } = await import('../telemetry.options.js');
    expect(resolveTelemetryOptions({})).toMatchObject({ propagate: true, propagateTo: undefined });
    const list = ['api.internal'];
    const resolved = resolveTelemetryOptions({ propagate: false, propagateTo: list });
    expect(resolved).toMatchObject({ propagate: false, propagateTo: ['api.internal'] });
    list.push('other');
    expect(resolved.propagateTo).toEqual(['api.internal']);
    const fn = () => true;
    expect(resolveTelemetryOptions({ propagateTo: fn }).propagateTo).toBe(fn);
  });
});

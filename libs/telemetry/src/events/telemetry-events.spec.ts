import { MAX_STRING_LENGTH } from '../privacy/bounded.js';
import { apiErrorEvent, apiRequestEvent, customEvent, slowRequestEvent, type EventIdentity } from './telemetry-events.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const user: EventIdentity = {
  distinctId: 'user-1',
  requestId: 'req-1',
  userId: 'user-1',
  environment: 'test',
  sessionId: 'sess-1',
  personless: false,
};
const anonymous: EventIdentity = {
  distinctId: 'anon-uuid',
  requestId: 'req-2',
  userId: 'anonymous',
  environment: 'test',
  personless: true,
};

const request = (statusCode: number, durationMs = 12) =>
  apiRequestEvent(user, { endpoint: '/items/:id', method: 'GET', statusCode, durationMs });

describe('apiRequestEvent', () => {
  it('builds an api_request event with the identity and request fields', () => {
    const before = Date.now();
    const e = apiRequestEvent(user, { endpoint: '/items/:id', method: 'GET', statusCode: 200, durationMs: 12.5 });
    expect(e.event).toBe('api_request');
    expect(e.distinct_id).toBe('user-1');
    expect(e.uuid).toMatch(UUID_V4);
    expect(Date.parse(e.timestamp)).toBeGreaterThanOrEqual(before - 1);
    expect(new Date(e.timestamp).toISOString()).toBe(e.timestamp);
    expect(e.properties).toEqual({
      endpoint: '/items/:id',
      method: 'GET',
      status_code: 200,
      response_time_ms: 12.5,
      success: true,
      user_id: 'user-1',
      environment: 'test',
      request_id: 'req-1',
      $session_id: 'sess-1',
    });
  });

  it.each<[number, boolean]>([
    [100, false],
    [199, false],
    [200, true],
    [201, true],
    [204, true],
    [299, true],
    [300, false],
    [304, false],
    [400, false],
    [404, false],
    [499, false],
    [500, false],
    [503, false],
  ])('status %i → success %s', (status, success) => {
    expect(request(status).properties.success).toBe(success);
    expect(request(status).properties.status_code).toBe(status);
  });

  it.each<[number, number]>([
    [12.3456, 12.35],
    [12.344, 12.34],
    [0.004, 0],
    [1234.5, 1234.5],
    [7, 7],
  ])('rounds response_time_ms %f → %f', (duration, expected) => {
    expect(request(200, duration).properties.response_time_ms).toBe(expected);
  });

  it('sets $process_person_profile: false only for personless identities', () => {
    const anon = apiRequestEvent(anonymous, { endpoint: '/', method: 'GET', statusCode: 200, durationMs: 1 });
    expect(anon.properties.$process_person_profile).toBe(false);
    expect(request(200).properties).not.toHaveProperty('$process_person_profile');
  });

  it('sets $session_id only when given, and request_id only when given', () => {
    expect(request(200).properties.$session_id).toBe('sess-1');
    const anon = apiRequestEvent(anonymous, { endpoint: '/', method: 'GET', statusCode: 200, durationMs: 1 });
    expect(anon.properties).not.toHaveProperty('$session_id');
    const noRequest = apiRequestEvent(
      { ...anonymous, requestId: undefined },
      { endpoint: '/', method: 'GET', statusCode: 200, durationMs: 1 },
    );
    expect(noRequest.properties).not.toHaveProperty('request_id');
  });

  it('sets is_internal_user only for tagged internal users', () => {
    expect(request(200).properties).not.toHaveProperty('is_internal_user');
    const internal = apiRequestEvent({ ...user, internalUser: true }, { endpoint: '/', method: 'GET', statusCode: 200, durationMs: 1 });
    expect(internal.properties.is_internal_user).toBe(true);
    const notInternal = apiRequestEvent({ ...user, internalUser: false }, { endpoint: '/', method: 'GET', statusCode: 200, durationMs: 1 });
    expect(notInternal.properties).not.toHaveProperty('is_internal_user');
  });

  it('gives each event its own uuid', () => {
    expect(request(200).uuid).not.toBe(request(200).uuid);
  });
});

describe('slowRequestEvent and apiErrorEvent', () => {
  it('slow_request carries the rounded duration and the threshold', () => {
    const e = slowRequestEvent(user, { endpoint: '/slow', method: 'POST', durationMs: 6000.123, thresholdMs: 5000 });
    expect(e.event).toBe('slow_request');
    expect(e.properties).toMatchObject({
      endpoint: '/slow',
      method: 'POST',
      duration_ms: 6000.12,
      threshold_ms: 5000,
      request_id: 'req-1',
    });
  });

  it('api_error carries the details and a bounded error_context', () => {
    const e = apiErrorEvent(anonymous, {
      endpoint: '/chat',
      method: 'POST',
      statusCode: 500,
      category: 'quota_error',
      details: { message: 'q'.repeat(2000), exceptionType: 'APIError', traceback: 'APIError: q\n    at x' },
    });
    expect(e.event).toBe('api_error');
    expect(e.properties).toMatchObject({
      error_type: 'quota_error',
      exception_type: 'APIError',
      endpoint: '/chat',
      method: 'POST',
      status_code: 500,
      traceback: 'APIError: q\n    at x',
      $process_person_profile: false,
    });
    const context = e.properties.error_context as string;
    expect(context.startsWith('APIError (quota_error) while handling POST /chat, answered 500: qqq')).toBe(true);
    expect(context.length).toBeLessThanOrEqual(500);
  });
});

describe('customEvent', () => {
  it('keeps the caller properties and adds the correlation properties', () => {
    const e = customEvent('chat_completed', user, { model: 'gpt-4o', tokens: 120 });
    expect(e.event).toBe('chat_completed');
    expect(e.distinct_id).toBe('user-1');
    expect(e.uuid).toMatch(UUID_V4);
    expect(e.properties).toEqual({
      model: 'gpt-4o',
      tokens: 120,
      user_id: 'user-1',
      environment: 'test',
      request_id: 'req-1',
      $session_id: 'sess-1',
    });
  });

  it('works without properties', () => {
    const e = customEvent('ping', anonymous, undefined);
    expect(e.properties).toEqual({ user_id: 'anonymous', environment: 'test', request_id: 'req-2', $process_person_profile: false });
  });

  it('bounds long strings, wide and deep values', () => {
    let deep: any = { leaf: 1 };
    for (let i = 0; i < 20; i++) deep = { deep };
    const e = customEvent('big', user, {
      text: 't'.repeat(100_000),
      list: Array.from({ length: 1000 }, (_, i) => i),
      deep,
    });
    expect((e.properties.text as string).length).toBeLessThanOrEqual(MAX_STRING_LENGTH);
    expect((e.properties.list as unknown[]).length).toBeLessThanOrEqual(101);
    expect(JSON.stringify(e.properties)).toContain('[Too deep]');
    expect(JSON.stringify(e).length).toBeLessThan(10_000);
  });

  it('does not throw on circular or BigInt input, and the result serialises', () => {
    const circular: any = { name: 'loop' };
    circular.self = circular;
    const throwing = Object.defineProperty({}, 'x', {
      enumerable: true,
      get() {
        throw new Error('getter');
      },
    });
    let e: ReturnType<typeof customEvent> | undefined;
    expect(() => {
      e = customEvent('weird', user, { circular, big: 2n ** 70n, fn: () => 1, sym: Symbol('s'), throwing, when: new Date(0) });
    }).not.toThrow();
    expect(() => JSON.stringify(e)).not.toThrow();
    expect(e!.properties).toMatchObject({
      circular: { name: 'loop', self: '[Circular]' },
      big: '1180591620717411303424',
      sym: 'Symbol(s)',
      throwing: { x: '[unreadable]' },
      when: '1970-01-01T00:00:00.000Z',
    });
    expect(e!.properties).not.toHaveProperty('fn');
  });

  it('cuts a very long event name to 200 characters', () => {
    expect(customEvent('n'.repeat(1000), user, {}).event.length).toBeLessThanOrEqual(200);
  });

  it('ignores non-object properties (an array)', () => {
    const e = customEvent('odd', user, ['a', 'b'] as unknown as Record<string, unknown>);
    expect(e.properties).toEqual({ user_id: 'user-1', environment: 'test', request_id: 'req-1', $session_id: 'sess-1' });
  });

  it('does not mutate the caller properties', () => {
    const props = { a: 1 };
    customEvent('e', user, props);
    expect(props).toEqual({ a: 1 });
  });
});

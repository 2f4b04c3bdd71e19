import { Operation } from '../request/operation.js';
import { incomingFields, outgoingFields } from './rpc-correlation.js';

function operation(init: { user?: { id: string }; sessionId?: string; frontendDistinctId?: string } = {}): Operation {
  return new Operation({
    requestId: 'req-1',
    method: 'GET',
    startedAt: 0,
    sessionId: init.sessionId,
    frontendDistinctId: init.frontendDistinctId,
    request: {},
    resolveUser: () => init.user,
    skip: false,
  });
}

describe('outgoingFields', () => {
  it("always carries the request id and the trace (the operation's span as the parent); an anonymous caller sends no distinct id", () => {
    const op = operation();
    expect(outgoingFields(op)).toEqual({ 'x-request-id': 'req-1', traceparent: `00-${op.traceId}-${op.spanId}-01` });
  });

  it("carries the session and the caller's distinct id when it has them", () => {
    expect(outgoingFields(operation({ sessionId: 's-1', user: { id: 'u-9' } }))).toMatchObject({
      'x-request-id': 'req-1',
      'x-posthog-session-id': 's-1',
      'x-posthog-distinct-id': 'u-9',
    });
    expect(outgoingFields(operation({ frontendDistinctId: 'visitor' }))['x-posthog-distinct-id']).toBe('visitor');
  });
});

describe('incomingFields', () => {
  it("reads a TCP or Redis context's metadata", () => {
    const context = { getMetadata: () => ({ 'x-request-id': 'abc', 'x-posthog-session-id': 's' }) };
    expect(incomingFields(context)).toEqual({ requestId: 'abc', sessionId: 's', distinctId: undefined, traceparent: undefined });
  });

  it("reads a NATS context's headers (an empty value is none)", () => {
    const headers = new Map([['x-request-id', 'n-1']]);
    const context = { getHeaders: () => ({ get: (name: string) => headers.get(name) ?? '' }) };
    expect(incomingFields(context)).toMatchObject({ requestId: 'n-1', sessionId: undefined });
  });

  it('ignores what is not a string, too long, or a context that throws', () => {
    expect(incomingFields({ getMetadata: () => ({ 'x-request-id': 42 }) }).requestId).toBeUndefined();
    expect(incomingFields({ getMetadata: () => ({ 'x-request-id': 'x'.repeat(600) }) }).requestId).toBeUndefined();
    expect(
      incomingFields({
        getMetadata: () => {
          throw new Error('no');
        },
      }),
    ).toEqual({});
    expect(incomingFields(undefined)).toEqual({});
    expect(incomingFields('data')).toEqual({});
  });
});

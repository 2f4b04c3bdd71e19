import { ForbiddenException, NotFoundException } from '@nestjs/common';
import type { FinishedOperation } from '../request/operation.js';
import { decideOutcome, type OutcomeRules } from './outcome.js';

const rules: OutcomeRules = { slowThresholdMs: 1000, captureExceptionsMinStatus: 500, ignoreErrors: [] };
const op = (over: Partial<FinishedOperation> = {}): FinishedOperation => ({
  endpoint: '/items/:id',
  method: 'GET',
  status: 200,
  sent: true,
  durationMs: 12,
  hasError: false,
  error: undefined,
  errorAnswered: false,
  ...over,
});

describe('decideOutcome', () => {
  it('a success: one api_request, no error, not slow', () => {
    expect(decideOutcome(op(), rules)).toEqual({
      endpoint: '/items/:id',
      method: 'GET',
      status: 200,
      durationMs: 12,
      success: true,
      slow: false,
      error: undefined,
    });
  });

  it('slow above the threshold only', () => {
    expect(decideOutcome(op({ durationMs: 1000 }), rules).slow).toBe(false);
    expect(decideOutcome(op({ durationMs: 1000.01 }), rules).slow).toBe(true);
  });

  it('a client that went away: 499, no error', () => {
    expect(decideOutcome(op({ sent: false }), rules)).toMatchObject({ status: 499, success: false, error: undefined });
  });

  it("an unknown route's 404 is no error, and is (unmatched)", () => {
    const outcome = decideOutcome(
      op({ endpoint: undefined, status: 404, hasError: true, error: new NotFoundException('Cannot GET /x') }),
      rules,
    );
    expect(outcome).toMatchObject({ endpoint: '(unmatched)', status: 404, error: undefined });
  });

  it('an error before any route (a middleware) is an error under (unmatched)', () => {
    const error = new Error('middleware');
    expect(decideOutcome(op({ endpoint: undefined, status: 500, hasError: true, error }), rules)).toMatchObject({
      endpoint: '(unmatched)',
      error: { value: error, severity: 500, tracked: true, handled: false },
    });
  });

  it('a 4xx an app filter answered is an error, not tracked, handled', () => {
    const error = new ForbiddenException();
    expect(decideOutcome(op({ status: 403, hasError: true, error, errorAnswered: true }), rules).error).toEqual({
      value: error,
      severity: 403,
      tracked: false,
      handled: true,
    });
    expect(decideOutcome(op({ status: 403, hasError: true, error }), { ...rules, captureExceptionsMinStatus: 400 }).error?.tracked).toBe(
      true,
    );
    expect(
      decideOutcome(op({ status: 500, hasError: true, error: new Error('x') }), { ...rules, captureExceptionsMinStatus: undefined }).error
        ?.tracked,
    ).toBe(false);
  });

  it('a failure after a success was sent: not a success, weighed as the error itself', () => {
    const outcome = decideOutcome(op({ status: 200, hasError: true, error: new Error('stream broke') }), rules);
    expect(outcome).toMatchObject({ status: 200, success: false, error: { severity: 500, tracked: true, handled: false } });
    expect(decideOutcome(op({ status: 200, hasError: true, error: new ForbiddenException() }), rules).error).toMatchObject({
      severity: 403,
      tracked: false,
    });
  });

  it('an error an app filter answered with a success status stays a success', () => {
    expect(decideOutcome(op({ status: 200, hasError: true, error: new Error('x'), errorAnswered: true }), rules)).toMatchObject({
      success: true,
      error: { severity: 200, tracked: false, handled: true },
    });
  });

  it('ignored errors make no error', () => {
    class Expected extends Error {}
    expect(
      decideOutcome(op({ status: 500, hasError: true, error: new Expected() }), { ...rules, ignoreErrors: [Expected] }).error,
    ).toBeUndefined();
  });
});

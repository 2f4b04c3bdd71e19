import { Operation, type OperationStart } from './operation.js';

const start = (over: Partial<OperationStart> = {}): OperationStart => ({
  requestId: 'r-1',
  method: 'GET',
  startedAt: 100,
  request: { raw: true },
  resolveUser: (request) => (request as { user?: { id: string } })?.user,
  skip: false,
  ...over,
});

describe('Operation', () => {
  it("the guard's route wins; an error's route is taken only where none was matched", () => {
    const o = new Operation(start());
    o.noteError(new Error('a'), false, { request: {}, endpoint: '/seen/at/error' });
    expect(o.endpoint).toBe('/seen/at/error');
    o.matchRoute('/items/:id', {});
    expect(o.endpoint).toBe('/items/:id');
    o.noteError(new Error('b'), false, { request: {}, endpoint: '/other' });
    expect(o.endpoint).toBe('/items/:id');
  });

  it('keeps the first error; a later sighting of it by an app filter marks it answered', () => {
    const first = new Error('first');
    const o = new Operation(start());
    o.noteError(first);
    o.noteError(new Error('second'), true);
    expect(o.error).toBe(first);
    o.noteError(first, true);
    expect(o.finish(500, true, 110).errorAnswered).toBe(true);
  });

  it('an error noted after the end is handed on once, as late; the one it ended with is not', () => {
    const late: unknown[] = [];
    const first = new Error('first');
    const o = new Operation({ ...start(), onLateError: (_op, error) => late.push(error) });
    o.noteError(first);
    expect(o.finish(500, true, 110).error).toBe(first);
    o.noteError(first, true);
    const after = new Error('after the end');
    o.noteError(after);
    o.noteError(new Error('and another'));
    expect(late).toEqual([after]);
    expect(o.ended).toBe(true);
    expect(o.endStatus).toBe(500);
  });

  it('a claimed frontend id is personless until a user is known; a trusted one is not', () => {
    const auth: { user?: { id: string } } = {};
    const claimed = new Operation({ ...start(), frontendDistinctId: 'f-1', frontendIdClaimed: true, resolveUser: () => auth.user });
    expect(claimed.distinctId).toBe('f-1');
    expect(claimed.personless).toBe(true);
    expect(new Operation({ ...start(), frontendDistinctId: 'f-1', frontendIdClaimed: false }).personless).toBe(false);
    auth.user = { id: 'u-1' };
    expect(claimed.distinctId).toBe('u-1');
    expect(claimed.personless).toBe(false);
  });

  it('a body stream that failed makes a cut response the server’s failure, not a client that left', () => {
    const failing = new Error('disk');
    const cut = new Operation(start());
    cut.noteStream({ errored: failing });
    expect(cut.finish(200, false, 150)).toMatchObject({ sent: true, hasError: true, error: failing, durationMs: 50 });
    const left = new Operation(start());
    left.noteStream({ errored: null });
    expect(left.finish(200, false, 150)).toMatchObject({ sent: false, hasError: false });
  });

  it('finds the user once auth set it, and is personless until then without a frontend id', () => {
    const request: { user?: { id: string } } = {};
    const o = new Operation(start({ request }));
    expect(o.userId).toBe('anonymous');
    expect(o.personless).toBe(true);
    const anonymous = o.distinctId;
    expect(o.distinctId).toBe(anonymous);
    request.user = { id: 'u-7' };
    expect(o.distinctId).toBe('u-7');
    expect(o.personless).toBe(false);
    expect(new Operation(start({ frontendDistinctId: 'ph-1' })).distinctId).toBe('ph-1');
  });

  it('opting out skips it', () => {
    const o = new Operation(start());
    o.optOut();
    expect(o.skip).toBe(true);
  });
});

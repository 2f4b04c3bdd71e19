import 'reflect-metadata';
import { endpointOf, eventName, jobMethodOf } from './job-method.js';

/** A function carrying metadata as `SetMetadata` (and so `@Cron`, `@Interval`, `@Timeout`, `@OnEvent`) puts it. */
function decorated(metadata: Record<string, unknown>): () => void {
  const fn = function method() {
    return undefined;
  };
  for (const [key, value] of Object.entries(metadata)) Reflect.defineMetadata(key, value, fn);
  return fn;
}

class ReportJobs {
  refresh() {
    return 'refreshed';
  }
}

describe('jobMethodOf', () => {
  it('reads @Cron, @Interval and @Timeout by their metadata keys, with the name option', () => {
    expect(jobMethodOf(decorated({ SCHEDULER_TYPE: 1, SCHEDULER_NAME: 'nightly' }), 'run')).toMatchObject({
      kind: 'cron',
      method: 'CRON',
      name: 'nightly',
    });
    expect(jobMethodOf(decorated({ SCHEDULER_TYPE: 2 }), 'run')).toMatchObject({ kind: 'timeout', method: 'TIMEOUT', name: undefined });
    expect(jobMethodOf(decorated({ SCHEDULER_TYPE: 3, SCHEDULER_NAME: '' }), 'run')).toMatchObject({ kind: 'interval', name: undefined });
  });

  it('reads @OnEvent, one event or several', () => {
    expect(jobMethodOf(decorated({ EVENT_LISTENER_METADATA: [{ event: 'order.created' }] }), 'on')).toMatchObject({
      kind: 'event',
      method: 'EVENT',
      name: 'order.created',
    });
    const several = decorated({ EVENT_LISTENER_METADATA: [{ event: 'order.created' }, { event: 'order.*' }, { event: 'order.created' }] });
    expect(jobMethodOf(several, 'on')?.name).toBe('order.created,order.*');
  });

  it('ignores plain methods, unknown scheduler types, and what is not a function', () => {
    expect(jobMethodOf(decorated({}), 'plain')).toBeUndefined();
    expect(jobMethodOf(decorated({ SCHEDULER_TYPE: 7 }), 'odd')).toBeUndefined();
    expect(jobMethodOf(decorated({ EVENT_LISTENER_METADATA: [null, 'x'] }), 'odd')).toBeUndefined();
    expect(jobMethodOf(undefined, 'none')).toBeUndefined();
    expect(jobMethodOf({}, 'none')).toBeUndefined();
  });
});

describe('endpointOf', () => {
  it('is <kind>:<name>, or <kind>:<Class>.<method> for a job without a name', () => {
    const instance = new ReportJobs();
    expect(endpointOf(jobMethodOf(decorated({ SCHEDULER_TYPE: 1, SCHEDULER_NAME: 'nightly' }), 'run')!, instance)).toBe('cron:nightly');
    expect(endpointOf(jobMethodOf(decorated({ SCHEDULER_TYPE: 3 }), 'refresh')!, instance)).toBe('interval:ReportJobs.refresh');
    expect(endpointOf(jobMethodOf(decorated({ EVENT_LISTENER_METADATA: { event: 'user.*' } }), 'on')!, instance)).toBe('event:user.*');
    expect(endpointOf(jobMethodOf(decorated({ SCHEDULER_TYPE: 2 }), 'once')!, Object.create(null))).toBe('timeout:anonymous.once');
  });

  it('is bounded', () => {
    const job = jobMethodOf(decorated({ EVENT_LISTENER_METADATA: { event: 'x'.repeat(5000) } }), 'on')!;
    expect(endpointOf(job, new ReportJobs()).length).toBeLessThanOrEqual(210);
  });
});

describe('eventName', () => {
  it('stringifies strings, symbols, namespaces and anything else', () => {
    expect(eventName('order.created')).toBe('order.created');
    expect(eventName('order.*')).toBe('order.*');
    expect(eventName(Symbol('paid'))).toBe('Symbol(paid)');
    expect(eventName(['order', Symbol.for('x'), '*'])).toBe('order.Symbol(x).*');
    expect(eventName(42)).toBe('42');
    expect(eventName(Object.create(null))).toBe('unknown');
  });
});

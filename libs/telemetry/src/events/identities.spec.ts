import type { PostHog } from 'posthog-node';
import { Operation } from '../request/operation.js';
import type { ResolvedTelemetryOptions, TelemetryUser } from '../telemetry.options.js';
import { apiRequestJson } from './api-request-json.js';
import { Identities } from './identities.js';
import { apiRequestEvent } from './telemetry-events.js';

const options = { environment: 'test', internalUsers: 'tag', internalDomains: [], mode: 'posthog' } as unknown as ResolvedTelemetryOptions;
const identities = new Identities(options, {} as PostHog);

function operation(user: TelemetryUser | undefined, frontendDistinctId?: string, frontendIdClaimed = false): Operation {
  return new Operation({
    requestId: 'req-1',
    method: 'GET',
    startedAt: 0,
    frontendDistinctId,
    frontendIdClaimed,
    request: {},
    resolveUser: () => user,
    skip: false,
  });
}

const fields = { endpoint: '/items/:id', method: 'GET', statusCode: 200, durationMs: 1 };

describe('Identities.of', () => {
  it.each<[string, Operation, boolean]>([
    ['an anonymous request: the UUID the module made', operation(undefined), true],
    ['a user whose id has text to escape', operation({ id: 'a "quoted" \\ ü id' }), false],
    ['a trusted frontend id with text to escape', operation(undefined, 'front "end" ü'), false],
    ["a frontend's anonymous id", operation(undefined, '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', true), false],
  ])('says whether the distinct id is one the module made, and api_request is written right either way (%s)', (_name, op, made) => {
    const identity = identities.of(op)!;
    expect(identity.madeDistinctId).toBe(made);
    const json = apiRequestJson(identity, fields);
    const { uuid, timestamp } = JSON.parse(json) as { uuid: string; timestamp: string };
    expect(json).toBe(JSON.stringify({ ...apiRequestEvent(identity, fields), timestamp, uuid }));
    expect(JSON.parse(json).distinct_id).toBe(op.distinctId);
  });
});

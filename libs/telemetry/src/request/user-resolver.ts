import type { TelemetryFailures } from '../telemetry-failures.js';
import type { TelemetryUser } from '../telemetry.options.js';
import type { UserResolver } from './operation.js';

const MAX_USER_FIELD = 200;

/**
 * The app's `resolveUser`, made safe: an id that is missing or empty names
 * nobody, both fields are bounded, and a throwing `resolveUser` counts as
 * anonymous (logged once).
 */
export function safeUserResolver(
  resolveUser: (request: unknown) => TelemetryUser | null | undefined,
  failures: TelemetryFailures,
): UserResolver {
  return (request) => {
    try {
      const user = resolveUser(request);
      if (!user || user.id === undefined || user.id === null || String(user.id) === '') return undefined;
      return {
        id: String(user.id).slice(0, MAX_USER_FIELD),
        email: typeof user.email === 'string' ? user.email.slice(0, MAX_USER_FIELD) : undefined,
      };
    } catch (error) {
      failures.report('resolveUser', error);
      return undefined;
    }
  };
}

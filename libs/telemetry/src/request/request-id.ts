import { randomUuid } from './random-ids.js';

/** Letters, digits and `-_.:`, 1 to 128 characters: safe to log, reflect and store. */
const VALID_REQUEST_ID = /^[A-Za-z0-9\-_.:]{1,128}$/;

export function isValidRequestId(value: unknown): value is string {
  return typeof value === 'string' && VALID_REQUEST_ID.test(value);
}

/**
 * Keeps the frontend's correlation id when it is well formed; anything else
 * (missing, repeated, too long, control characters, unicode) gets a new UUID v4.
 */
export function resolveRequestId(header: unknown): string {
  return isValidRequestId(header) ? header : randomUuid();
}

import type { CategorizeError } from '../telemetry.options.js';

/** The categories the dashboards group `api_error` by. */
export const ErrorCategory = {
  /** The client went away: ECONNRESET, EPIPE, socket hang up, aborted requests. */
  Connection: 'connection_error',
  /** An LLM provider refused the content (content filter, policy violation). */
  ContentFilter: 'content_filter',
  /** A provider's quota, balance or billing limit was hit. */
  Quota: 'quota_error',
  /** A 4xx HttpException: the request was wrong (validation, auth, not found). */
  Client: 'client_error',
  /** Everything else. */
  Application: 'application_error',
} as const;

const CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);
const CONNECTION_MESSAGE =
  /socket hang up|client (?:disconnected|closed|aborted)|request aborted|\bECONNRESET\b|\bEPIPE\b|\bECONNABORTED\b/i;

const CONTENT_FILTER_CODES = new Set(['content_filter', 'content_policy_violation', 'responsible_ai_policy_violation']);
// Separated words only: an identifier such as `contentFilter` in an ordinary error is no refusal.
const CONTENT_FILTER_MESSAGE =
  /\bcontent[ _]filter|\bcontent[ _]policy|content management policy|safety system|flagged as (?:potentially )?(?:harmful|inappropriate)/i;

const QUOTA_CODES = new Set(['insufficient_quota', 'quota_exceeded', 'billing_hard_limit_reached', 'insufficient_balance']);
// Provider phrasings, not the bare word "billing" (a `billingAddress` TypeError is no quota error).
const QUOTA_MESSAGE =
  /insufficient[_ ]quota|exceeded your (?:current )?quota|quota (?:exceeded|exhausted)|credit balance|insufficient (?:balance|credits?|funds)|billing (?:hard )?limit|billing details|check your (?:plan and )?billing|payment required/i;

/** Longest `cause` chain walked: deep chains cannot cost more than this. */
const MAX_CAUSE_DEPTH = 5;

function field(value: unknown, key: string): unknown {
  try {
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  } catch {
    return undefined;
  }
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.slice(0, 4000) : '';
}

/** The status an `HttpException` (anything with `getStatus()`) answers with, or `undefined`. */
export function httpStatusOf(error: unknown): number | undefined {
  try {
    const getStatus = field(error, 'getStatus');
    if (typeof getStatus === 'function') {
      const status = getStatus.call(error);
      if (typeof status === 'number') return status;
    }
  } catch {
    /* a throwing getStatus is no status */
  }
  return undefined;
}

function statusOf(error: unknown): number | undefined {
  const own = httpStatusOf(error);
  if (own !== undefined) return own;
  const status = field(error, 'status') ?? field(error, 'statusCode');
  if (typeof status === 'number') return status;
  // A GraphQL error's (Apollo's `extensions.http.status`: 400 for a document it refuses).
  const graphql = field(field(field(error, 'extensions'), 'http'), 'status');
  if (typeof graphql === 'number') return graphql;
  return isGraphqlDocumentError(error) ? 400 : undefined;
}

/**
 * A graphql-js error about the document itself (a syntax or validation error, a variable of the wrong type):
 * it points at the document (`locations`), at no field (`path`), and wraps no thrown error.
 */
export function isGraphqlDocumentError(error: unknown): boolean {
  try {
    if (Object.prototype.toString.call(error) !== '[object GraphQLError]') return false;
  } catch {
    return false;
  }
  const locations = field(error, 'locations');
  return Array.isArray(locations) && locations.length > 0 && field(error, 'path') === undefined && field(error, 'originalError') == null;
}

/** The strings a provider may put its error code in (`code`, `type`, `error.code`, `finish_reason`). */
function codesOf(error: unknown): string[] {
  const nested = field(error, 'error');
  return [field(error, 'code'), field(error, 'type'), field(nested, 'code'), field(nested, 'type'), field(error, 'finish_reason')].filter(
    (c): c is string => typeof c === 'string',
  );
}

function builtInCategory(error: unknown): string | undefined {
  const codes = codesOf(error);
  const message = typeof error === 'string' ? error.slice(0, 4000) : text(field(error, 'message'));
  const name = text(field(error, 'name'));
  const status = statusOf(error);

  if (codes.some((c) => CONNECTION_CODES.has(c)) || CONNECTION_MESSAGE.test(message)) return ErrorCategory.Connection;
  if (codes.some((c) => CONTENT_FILTER_CODES.has(c)) || CONTENT_FILTER_MESSAGE.test(message)) return ErrorCategory.ContentFilter;
  if (codes.some((c) => QUOTA_CODES.has(c)) || status === 402 || QUOTA_MESSAGE.test(message)) return ErrorCategory.Quota;
  if (name === 'AbortError' && /client|request/i.test(message)) return ErrorCategory.Connection;
  return undefined;
}

/**
 * A category rule: `match` is an error code, name or type (string), a pattern
 * tested on the message (RegExp), or a predicate; tried on the error and each
 * error of its `cause` chain.
 */
export interface ErrorCategoryRule {
  category: string;
  match: string | RegExp | ((error: unknown) => boolean);
}

function ruleMatches(rule: ErrorCategoryRule, error: unknown): boolean {
  const { match } = rule;
  if (typeof match === 'function') return match(error) === true;
  if (typeof match === 'string') return codesOf(error).includes(match) || field(error, 'name') === match;
  const message = typeof error === 'string' ? error : text(field(error, 'message'));
  match.lastIndex = 0;
  return match.test(message);
}

/** The first category `decide` finds on the error or its `cause` chain. */
function alongCauses(error: unknown, decide: (error: unknown) => string | undefined): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && current !== undefined && current !== null; depth++) {
    const category = decide(current);
    if (category) return category;
    current = field(current, 'cause');
  }
  return undefined;
}

/**
 * The category of a thrown value: the app's `categorizeError`, then its rule
 * list, then the built-in rules, each on the error and its `cause` chain; a
 * remaining 4xx HttpException is `client_error`, anything else
 * `application_error`. Never throws, whatever the value or a custom rule does.
 */
export function categorizeError(error: unknown, custom?: CategorizeError, rules: readonly ErrorCategoryRule[] = []): string {
  if (custom) {
    try {
      const chosen = custom(error);
      if (typeof chosen === 'string' && chosen !== '') return chosen.slice(0, 100);
    } catch {
      /* a failing custom rule leaves the decision to the others */
    }
  }
  if (rules.length > 0) {
    const fromRules = alongCauses(error, (current) => {
      for (const rule of rules) {
        try {
          if (ruleMatches(rule, current)) return rule.category.slice(0, 100);
        } catch {
          /* a failing predicate is no match */
        }
      }
      return undefined;
    });
    if (fromRules) return fromRules;
  }
  const builtIn = alongCauses(error, builtInCategory);
  if (builtIn) return builtIn;
  const status = statusOf(error);
  if (status !== undefined && status >= 400 && status < 500) return ErrorCategory.Client;
  return ErrorCategory.Application;
}

import { httpStatusOf, isGraphqlDocumentError } from '../errors/error-categorizer.js';

/** The endpoint of a GraphQL request whose document could not be parsed, or names no operation it holds. */
export const INVALID_GRAPHQL_OPERATION = 'graphql:(invalid)';

/** The parts of a GraphQL document (graphql-js's AST) read here; nothing of `graphql` is imported. */
interface AstNode {
  kind?: unknown;
  operation?: unknown;
  name?: { value?: unknown };
  selectionSet?: { selections?: AstNode[] };
}

/**
 * `graphql:<query|mutation|subscription> <OperationName>` for the operation of `document` that runs
 * (the one named `operationName`, else the only one); an anonymous operation is named by its first root
 * field. `graphql:(invalid)` when there is no document or no such operation: GraphQL refuses it.
 */
/** Longest operation name kept in an endpoint. */
const MAX_OPERATION_NAME = 200;

export function graphqlEndpointOf(document: unknown, operationName: unknown): string {
  const definitions = (document as { definitions?: AstNode[] } | undefined)?.definitions;
  if (!Array.isArray(definitions)) return INVALID_GRAPHQL_OPERATION;
  const operations = definitions.filter((d) => d?.kind === 'OperationDefinition');
  const wanted = typeof operationName === 'string' && operationName !== '' ? operationName : undefined;
  const operation = wanted ? operations.find((d) => d.name?.value === wanted) : operations.length === 1 ? operations[0] : undefined;
  if (!operation) return INVALID_GRAPHQL_OPERATION;
  const type = typeof operation.operation === 'string' ? operation.operation : 'query';
  // The client names it: bounded, as every endpoint is.
  return `graphql:${type} ${nameOf(operation).slice(0, MAX_OPERATION_NAME)}`;
}

function nameOf(operation: AstNode): string {
  const own = operation.name?.value;
  if (typeof own === 'string' && own !== '') return own;
  const first = operation.selectionSet?.selections?.find((s) => s?.kind === 'Field' && typeof s.name?.value === 'string');
  const field = first?.name?.value;
  return typeof field === 'string' ? field : '(anonymous)';
}

/** GraphQL error codes (Apollo's, graphql-js's) and the HTTP status they mean. */
const STATUS_OF_CODE: Record<string, number> = {
  GRAPHQL_PARSE_FAILED: 400,
  GRAPHQL_VALIDATION_FAILED: 400,
  BAD_USER_INPUT: 400,
  BAD_REQUEST: 400,
  OPERATION_RESOLUTION_FAILURE: 400,
  PERSISTED_QUERY_NOT_FOUND: 400,
  PERSISTED_QUERY_NOT_SUPPORTED: 400,
  MER_ERR_GQL_VALIDATION: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
};

function numericStatus(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 400 && value <= 599 ? value : undefined;
}

function read(value: unknown, key: string): unknown {
  try {
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The status a failed GraphQL operation is recorded with, from its first error: an `HttpException`'s
 * (a guard's `ForbiddenException`: 403), an error's own `status`/`statusCode`, a `GraphQLError`'s
 * `extensions.http.status` or its `extensions.code` (`GRAPHQL_VALIDATION_FAILED`: 400,
 * `UNAUTHENTICATED`: 401…), 400 for graphql-js's own error about the document; 500 for anything else.
 */
export function graphqlErrorStatus(error: unknown): number {
  const own = httpStatusOf(error) ?? numericStatus(read(error, 'status')) ?? numericStatus(read(error, 'statusCode'));
  if (own !== undefined) return own;
  const extensions = read(error, 'extensions');
  const http = numericStatus(read(read(extensions, 'http'), 'status'));
  if (http !== undefined) return http;
  const code = read(extensions, 'code') ?? read(error, 'code');
  if (typeof code === 'string' && STATUS_OF_CODE[code] !== undefined) return STATUS_OF_CODE[code];
  const original = read(error, 'originalError');
  if (original !== undefined && original !== null && original !== error) return graphqlErrorStatus(original);
  return isGraphqlDocumentError(error) ? 400 : 500;
}

/** Codes of the errors Apollo wraps a refused document's graphql-js error in. */
const DOCUMENT_CODES = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT']);

/**
 * What a GraphQL error reports: the error a resolver threw (graphql-js keeps it as `originalError`), else
 * itself. For a document refused, the error that says so: Apollo's (with its code and HTTP status 400) rather
 * than the graphql-js error it wraps, and for Mercurius's `MER_ERR_GQL_VALIDATION` the first GraphQL error it holds.
 */
export function reportedError(error: unknown): unknown {
  let value = error;
  for (let depth = 0; depth < 5; depth++) {
    const original = read(value, 'originalError');
    if (original === undefined || original === null || original === value) break;
    if (isGraphqlError(original) && DOCUMENT_CODES.has(String(read(read(value, 'extensions'), 'code')))) break;
    value = original;
  }
  const inner = read(value, 'errors');
  if (read(value, 'code') === 'MER_ERR_GQL_VALIDATION' && Array.isArray(inner) && inner.length > 0) return inner[0];
  return value;
}

/** graphql-js's `GraphQLError` or a subclass (its `Symbol.toStringTag`), without importing `graphql`. */
function isGraphqlError(value: unknown): boolean {
  return value !== null && typeof value === 'object' && Object.prototype.toString.call(value) === '[object GraphQLError]';
}

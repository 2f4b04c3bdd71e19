import { parse, GraphQLError } from 'graphql';
import { ForbiddenException, NotFoundException } from '@nestjs/common';
import { categorizeError } from '../errors/error-categorizer.js';
import { graphqlEndpointOf, graphqlErrorStatus, INVALID_GRAPHQL_OPERATION, reportedError } from './graphql-naming.js';

describe('graphqlEndpointOf', () => {
  it('names an operation by its type and name', () => {
    expect(graphqlEndpointOf(parse('query GetUser { user { id } }'), undefined)).toBe('graphql:query GetUser');
    expect(graphqlEndpointOf(parse('mutation Save { save }'), null)).toBe('graphql:mutation Save');
    expect(graphqlEndpointOf(parse('subscription OnEvent { event }'), '')).toBe('graphql:subscription OnEvent');
  });

  it('names an anonymous operation by its first root field', () => {
    expect(graphqlEndpointOf(parse('{ ...F book { title } } fragment F on Query { x }'), undefined)).toBe('graphql:query book');
    expect(graphqlEndpointOf(parse('mutation { addBook(title: "x") { id } other }'), undefined)).toBe('graphql:mutation addBook');
  });

  it('picks the operation named by operationName in a document of several', () => {
    const document = parse('query A { a } mutation B { b }');
    expect(graphqlEndpointOf(document, 'B')).toBe('graphql:mutation B');
    expect(graphqlEndpointOf(document, undefined)).toBe(INVALID_GRAPHQL_OPERATION);
    expect(graphqlEndpointOf(document, 'C')).toBe(INVALID_GRAPHQL_OPERATION);
  });

  it('calls a missing document invalid', () => {
    expect(graphqlEndpointOf(undefined, 'A')).toBe(INVALID_GRAPHQL_OPERATION);
    expect(graphqlEndpointOf({ definitions: 'no' }, undefined)).toBe(INVALID_GRAPHQL_OPERATION);
  });
});

describe('graphqlErrorStatus', () => {
  it("takes an HttpException's status, also through a GraphQL error", () => {
    expect(graphqlErrorStatus(new ForbiddenException())).toBe(403);
    expect(graphqlErrorStatus(new GraphQLError('x', { originalError: new NotFoundException() }))).toBe(404);
  });

  it('reads GraphQL extensions: http status, then code', () => {
    expect(graphqlErrorStatus(new GraphQLError('x', { extensions: { http: { status: 429 } } }))).toBe(429);
    expect(graphqlErrorStatus(new GraphQLError('x', { extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }))).toBe(400);
    expect(graphqlErrorStatus(new GraphQLError('x', { extensions: { code: 'UNAUTHENTICATED' } }))).toBe(401);
  });

  it("is 400 for graphql-js's own error about the document, not for a resolver's", () => {
    const node = parse('{ nope }').definitions[0];
    expect(graphqlErrorStatus(new GraphQLError('Cannot query field "nope"', { nodes: node }))).toBe(400);
    expect(categorizeError(new GraphQLError('Cannot query field "nope"', { nodes: node }))).toBe('client_error');
    expect(graphqlErrorStatus(new GraphQLError('boom', { nodes: node, path: ['nope'] }))).toBe(500);
    expect(graphqlErrorStatus(new GraphQLError('boom'))).toBe(500);
    expect(categorizeError(new GraphQLError('boom'))).toBe('application_error');
  });

  it('is 500 for anything else', () => {
    expect(graphqlErrorStatus(new Error('boom'))).toBe(500);
    expect(graphqlErrorStatus(new GraphQLError('x', { extensions: { code: 'INTERNAL_SERVER_ERROR' } }))).toBe(500);
    expect(graphqlErrorStatus(undefined)).toBe(500);
    expect(graphqlErrorStatus({ status: 200 })).toBe(500);
  });
});

describe('reportedError', () => {
  it("is the resolver's error, as thrown", () => {
    const thrown = new Error('boom');
    expect(reportedError(new GraphQLError('boom', { originalError: thrown }))).toBe(thrown);
    const own = new GraphQLError('mine', { extensions: { code: 'FORBIDDEN' } });
    expect(reportedError(new GraphQLError('mine', { originalError: own }))).toBe(own);
  });

  it("is Apollo's error for a refused document, not the graphql-js error it wraps", () => {
    const inner = new GraphQLError('Cannot query field');
    const outer = new GraphQLError('Cannot query field', { originalError: inner, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
    expect(reportedError(outer)).toBe(outer);
  });

  it("is the first error Mercurius's validation error holds", () => {
    const inner = new GraphQLError('Cannot query field');
    const mercurius = Object.assign(new Error('Graphql validation error'), {
      code: 'MER_ERR_GQL_VALIDATION',
      statusCode: 400,
      errors: [inner],
    });
    expect(reportedError(new GraphQLError(mercurius.message, { originalError: mercurius }))).toBe(inner);
  });
});

import {
  Catch,
  ForbiddenException,
  Injectable,
  Optional,
  Module,
  NotFoundException,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { APP_FILTER, NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { jest } from '@jest/globals';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import type { MercuriusDriverConfig } from '@nestjs/mercurius';
import {
  Args,
  Field,
  GqlExecutionContext,
  GraphQLModule,
  type GqlExceptionFilter,
  Int,
  Mutation,
  ObjectType,
  Query,
  Resolver,
} from '@nestjs/graphql';
import { GraphQLError } from 'graphql';
import { SkipTelemetry, TelemetryModule, TelemetryService, getRequestContext, type TelemetryModuleOptions } from 'nestjs-posthog-telemetry';
import { CaptureServer } from './support/capture-server.js';
import { RecordingLogger } from './support/recording-logger.js';
import { SentryServer, sentryFor } from './support/sentry-server.js';
import { sendingTo } from './support/test-app.js';
import { ask, comparable, type Answer } from './support/twin-apps.js';

/**
 * GraphQL: the app of the Nest docs' code-first recipe, on Apollo (Express) and on Mercurius
 * (Fastify), booted with and without the module. Its answers (data, errors, extensions, status) and Nest's
 * own error log must be the same; the loopback PostHog and Sentry must see one `api_request` per operation,
 * named `graphql:<type> <Name>`, and each resolver error reported once.
 */

@ObjectType()
class Book {
  @Field(() => String)
  title!: string;

  @Field(() => Int)
  pages!: number;
}

/** A guard of the docs' recipe: `Authorization: Bearer alice` is Alice, anybody else is refused. */
@Injectable()
class BearerGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = GqlExecutionContext.create(context).getContext().req;
    if (request.headers.authorization === 'Bearer alice') {
      request.user = { id: 'user-alice', email: 'alice@example.com' };
      return true;
    }
    throw new ForbiddenException('members only');
  }
}

const seen: ReturnType<typeof getRequestContext>[] = [];

/** An error of the app's domain, which its GraphQL filter answers with an error of its own shape. */
class PaymentRequiredError extends Error {}

@Catch(PaymentRequiredError)
class PaymentRequiredFilter implements GqlExceptionFilter {
  catch(exception: PaymentRequiredError) {
    return new GraphQLError(`payment required: ${exception.message}`, { extensions: { code: 'PAYMENT_REQUIRED' } });
  }
}

@Resolver(() => Book)
class BookResolver {
  constructor(@Optional() private readonly telemetry?: TelemetryService) {}

  /** An error the app catches and reports itself (`captureError`), answering normally. */
  @Query(() => Boolean)
  report(@Args('tag', { type: () => String }) tag: string): boolean {
    this.telemetry?.captureError(new Error(`reported (${tag})`));
    return true;
  }

  @Query(() => Book)
  pay(@Args('tag', { type: () => String }) tag: string): Book {
    throw new PaymentRequiredError(`card declined (${tag})`);
  }

  @Query(() => Book)
  book(@Args('title', { type: () => String }) title: string): Book {
    return { title, pages: title.length * 10 };
  }

  @Query(() => Book)
  failing(@Args('tag', { type: () => String }) tag: string): Book {
    throw new Error(`shelf collapsed (${tag})`);
  }

  @Query(() => Book)
  missing(@Args('tag', { type: () => String }) tag: string): Book {
    throw new NotFoundException(`no such book (${tag})`);
  }

  @UseGuards(BearerGuard)
  @Query(() => String)
  secret(): string {
    return 'the secret';
  }

  /** Keeps what the code of a resolver sees of its request (`getRequestContext()`); answers the same either way. */
  @Query(() => Boolean)
  remember(): boolean {
    seen.push(getRequestContext());
    return true;
  }

  @SkipTelemetry()
  @Query(() => String)
  ping(): string {
    return 'pong';
  }

  @Mutation(() => Book)
  addBook(@Args('title', { type: () => String }) title: string): Book {
    return { title, pages: 1 };
  }
}

// Mercurius requires @fastify/static (for its GraphiQL page, off here), which requires an ES-module-only
// package: Node 20 loads it, Jest's CommonJS runtime cannot. The page is never served in these apps.
jest.mock('@fastify/static', () => Object.assign(async () => undefined, { default: async () => undefined }));
const { MercuriusDriver } = await import('@nestjs/mercurius');

type Driver = 'apollo' | 'mercurius';
const DRIVERS: Driver[] = ['apollo', 'mercurius'];

function graphqlModule(driver: Driver) {
  return driver === 'apollo'
    ? GraphQLModule.forRoot<ApolloDriverConfig>({
        driver: ApolloDriver,
        autoSchemaFile: true,
        graphiql: false,
        allowBatchedHttpRequests: true,
      })
    : GraphQLModule.forRoot<MercuriusDriverConfig>({
        driver: MercuriusDriver,
        autoSchemaFile: true,
        graphiql: false,
        allowBatchedQueries: true,
      });
}

/** Boots the app as `main.ts` does, with `TelemetryModule` first or last among its imports, or without it. */
async function boot(
  driver: Driver,
  logger: RecordingLogger,
  telemetry?: TelemetryModuleOptions,
  placement: 'first' | 'last' = 'first',
): Promise<INestApplication> {
  const telemetryImport = telemetry ? [TelemetryModule.forRoot({ environment: 'test', ...telemetry })] : [];
  @Module({
    imports: placement === 'first' ? [...telemetryImport, graphqlModule(driver)] : [graphqlModule(driver), ...telemetryImport],
    providers: [BookResolver, { provide: APP_FILTER, useClass: PaymentRequiredFilter }],
  })
  class AppModule {}
  const app =
    driver === 'mercurius'
      ? await NestFactory.create(AppModule, new FastifyAdapter(), { logger, abortOnError: false })
      : await NestFactory.create(AppModule, { logger, abortOnError: false });
  await app.listen(0, '127.0.0.1');
  return app;
}

interface Case {
  name: string;
  body: string;
  /** A GET query: the path with its query string (the body is then unused). */
  get?: string;
  headers?: Record<string, string>;
  /** `[endpoint, status_code, success]` of each `api_request` expected (one per operation). */
  expect: [string, number, boolean][];
  /** The `api_error`s expected: `[error message fragment, tracked]` (tracked: `$exception` and Sentry). */
  errors: [string, boolean][];
  user?: string;
}

const gql = (query: string, extra: Record<string, unknown> = {}) => JSON.stringify({ query, ...extra });

function cases(driver: Driver, placement: string): Case[] {
  // Messages of their own per app and run: Sentry's Dedupe drops identical consecutive events.
  const tag = `${driver}-${placement}-${process.pid}`;
  return [
    {
      name: 'success',
      body: gql('query GetBook { book(title: "Dune") { title pages } }'),
      expect: [['graphql:query GetBook', 200, true]],
      errors: [],
    },
    {
      name: 'resolver error',
      body: gql(`query Collapse { failing(tag: "${tag}") { title } }`),
      expect: [['graphql:query Collapse', 500, false]],
      errors: [[`shelf collapsed (${tag})`, true]],
    },
    {
      name: 'HttpException',
      body: gql(`query Missing { missing(tag: "${tag}") { title } }`),
      expect: [['graphql:query Missing', 404, false]],
      errors: [[`no such book (${tag})`, false]],
    },
    {
      name: 'guard rejection',
      body: gql('query Secret { secret }'),
      expect: [['graphql:query Secret', 403, false]],
      errors: [['members only', false]],
    },
    {
      name: 'guard with a user',
      body: gql('query Secret { secret remember }'),
      headers: { authorization: 'Bearer alice' },
      expect: [['graphql:query Secret', 200, true]],
      errors: [],
      user: 'user-alice',
    },
    {
      name: 'validation error',
      body: gql('query BadField { book(title: "x") { nope } }'),
      expect: [['graphql:query BadField', 400, false]],
      errors: [['nope', false]],
    },
    {
      name: 'anonymous operation',
      body: gql('{ book(title: "Emma") { title } }'),
      expect: [['graphql:query book', 200, true]],
      errors: [],
    },
    {
      name: 'document of several operations, with operationName',
      body: gql(`query First { book(title: "a") { title } } query Second { failing(tag: "${tag}-2") { title } }`, {
        operationName: 'Second',
      }),
      expect: [['graphql:query Second', 500, false]],
      errors: [[`shelf collapsed (${tag}-2)`, true]],
    },
    {
      name: 'two failing fields',
      body: gql(`query Two { a: failing(tag: "${tag}-a") { title } b: missing(tag: "${tag}-b") { title } }`),
      expect: [['graphql:query Two', 500, false]],
      errors: [
        [`shelf collapsed (${tag}-a)`, true],
        [`no such book (${tag}-b)`, false],
      ],
    },
    {
      // Recorded as any HTTP request the module sees (its error reported as the HTTP adapter reports it).
      name: 'malformed JSON, before any operation',
      body: '{"query": ',
      expect: [['(unmatched)', 400, false]],
      errors: driver === 'apollo' ? [['JSON', false]] : [], // Nest's body parser on Express; Fastify's own answer
    },
    {
      name: 'GET query',
      body: '',
      get: `/graphql?query=${encodeURIComponent('query ByGet { book(title: "get") { title } }')}`,
      // Apollo's CSRF prevention wants a header a browser's simple request cannot send.
      headers: { 'apollo-require-preflight': 'true' },
      expect: [['graphql:query ByGet', 200, true]],
      errors: [],
    },
    {
      // Recorded as any operation: the app serves it (a client's tooling asking for the schema).
      name: 'introspection',
      body: gql('query IntrospectionQuery { __schema { queryType { name } } }'),
      expect: [['graphql:query IntrospectionQuery', 200, true]],
      errors: [],
    },
    {
      // One `close` listener per response, however many operations: no MaxListenersExceededWarning.
      name: 'batch of twelve',
      body: JSON.stringify(Array.from({ length: 12 }, (_, n) => ({ query: `query Q${n} { book(title: "${n}") { pages } }` }))),
      expect: Array.from({ length: 12 }, (_, n): [string, number, boolean] => [`graphql:query Q${n}`, 200, true]),
      errors: [],
    },
    {
      name: "an error the app's GraphQL filter answers",
      body: gql(`query Pay { pay(tag: "${tag}") { title } }`),
      expect: [['graphql:query Pay', 500, false]],
      errors: [[`card declined (${tag})`, true]],
    },
    {
      name: 'an error the app reports itself (captureError)',
      body: gql(`query Report { report(tag: "${tag}") }`),
      expect: [['graphql:query Report', 200, true]],
      errors: [[`reported (${tag})`, true]],
    },
    {
      // Mercurius answers a refused batch entry itself, with the batch's context: the entry is found by its query.
      name: 'batch with a refused entry',
      body: JSON.stringify([
        { query: 'query Fine { book(title: "fine") { title } }' },
        { query: `query Refused { book(title: "${tag}") { nope } }` },
        { query: 'query Broken { book(' },
      ]),
      expect: [
        ['graphql:query Fine', 200, true],
        ['graphql:query Refused', 400, false],
        ['graphql:(invalid)', 400, false],
      ],
      errors: [
        ['nope', false],
        ['Syntax Error', false],
      ],
    },
    { name: '@SkipTelemetry() resolver', body: gql('query Ping { ping }'), expect: [], errors: [] },
    {
      name: 'batch',
      body: JSON.stringify([
        { query: 'query One { book(title: "one") { title } }' },
        { query: 'mutation Add { addBook(title: "two") { pages } }' },
      ]),
      expect: [
        ['graphql:query One', 200, true],
        ['graphql:mutation Add', 200, true],
      ],
      errors: [],
    },
  ];
}

let sequence = 0;
const fresh = (label: string) => `gql-${label.replace(/\W+/g, '-')}-${process.pid}-${++sequence}`;

async function runAll(app: INestApplication, list: Case[], ids: string[]): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const [i, c] of list.entries()) {
    answers.push(
      await ask(
        app,
        c.get
          ? { method: 'GET', path: c.get, headers: { 'x-request-id': ids[i], ...(c.headers ?? {}) } }
          : {
              method: 'POST',
              path: '/graphql',
              headers: { 'content-type': 'application/json', 'x-request-id': ids[i], ...(c.headers ?? {}) },
              body: c.body,
            },
      ),
    );
  }
  return answers;
}

/** Keeps the context Nest's `Logger` appends last (`error(message, stack?, context)`). */
class ErrorLogger extends RecordingLogger {
  error(message: unknown, ...rest: unknown[]) {
    this.entries.push({
      context: String(rest[rest.length - 1] ?? ''),
      message: message instanceof Error ? `${message.name}: ${message.message}` : String(message),
    });
  }
}

/** Nest's own error lines (`ERROR [ExceptionsHandler] …`), as the app's logger got them. */
const exceptionLines = (logger: RecordingLogger) => logger.messagesFrom('ExceptionsHandler');

// One PostHog and one Sentry for the file: Sentry is set up once per process (a second DSN would be ignored).
let capture: CaptureServer;
let sentry: SentryServer;
beforeAll(async () => {
  capture = await new CaptureServer().start();
  sentry = await new SentryServer().start();
});
afterAll(async () => {
  await capture?.stop();
  await sentry?.stop();
});

const SHAPES = DRIVERS.flatMap((driver) => (['first', 'last'] as const).map((placement) => [driver, placement] as const));

describe.each(SHAPES)('GraphQL on %s, the module imported %s', (driver, placement) => {
  const list = cases(driver, placement);
  const ids = list.map((c) => fresh(`${driver}-${placement}-${c.name}`));
  let without: Answer[];
  let withModule: Answer[];
  let logWithout: string[];
  let logWith: string[];

  beforeAll(async () => {
    const plainLogger = new ErrorLogger();
    const plain = await boot(driver, plainLogger);
    try {
      without = await runAll(plain, list, ids);
    } finally {
      await plain.close();
    }
    logWithout = exceptionLines(plainLogger);
    const logger = new ErrorLogger();
    seen.length = 0;
    const app = await boot(driver, logger, { ...sendingTo(capture.url), sentry: sentryFor(sentry) }, placement);
    try {
      withModule = await runAll(app, list, ids);
      const expected = list.reduce((n, c) => n + c.expect.length, 0);
      await capture.waitFor(
        (events) => events.filter((e) => e.event === 'api_request' && ids.includes(e.properties.request_id)).length >= expected,
      );
      const errors = list.reduce((n, c) => n + c.errors.length, 0);
      await capture.waitFor(
        (events) => events.filter((e) => e.event === 'api_error' && ids.includes(e.properties.request_id)).length >= errors,
      );
      const tracked = list.flatMap((c, i) => (c.errors.some(([, t]) => t) ? [ids[i]] : []));
      await sentry.waitForRequests(...tracked);
      await new Promise((done) => setTimeout(done, 200)); // anything extra would have arrived by now
    } finally {
      await app.close();
    }
    logWith = exceptionLines(logger);
  });

  it.each(list.map((c, i) => [c.name, i] as const))('answers %s exactly as without the module', (_name, i) => {
    expect(comparable(withModule[i])).toEqual(comparable(without[i]));
  });

  it('gives resolvers the context of their request, with the user the guard set', () => {
    const i = list.findIndex((c) => c.user);
    expect(seen).toEqual([expect.objectContaining({ requestId: ids[i], userId: 'user-alice', distinctId: 'user-alice' })]);
  });

  it("keeps Nest's own error log", () => {
    expect(logWith.length).toBeGreaterThan(0);
    expect(logWith).toEqual(logWithout);
  });

  it.each(list.map((c, i) => [c.name, i] as const))('records %s as its GraphQL operations', (_name, i) => {
    const c = list[i];
    const events = capture.forRequest(ids[i]);
    const requests = events.filter((e) => e.event === 'api_request');
    expect(requests.map((e) => [e.properties.endpoint, e.properties.status_code, e.properties.success]).sort()).toEqual(
      [...c.expect].sort(),
    );
    for (const e of requests) {
      expect(e.properties.method).toBe(c.get ? 'GET' : 'POST');
      expect(typeof e.properties.response_time_ms).toBe('number');
      if (c.user) {
        expect(e.properties.user_id).toBe(c.user);
        expect(e.distinct_id).toBe(c.user);
      }
    }
    // One journey: every event of the request shares its trace.
    expect(new Set(events.map((e) => e.properties.trace_id)).size).toBeLessThanOrEqual(1);
    const errors = events.filter((e) => e.event === 'api_error');
    expect(errors).toHaveLength(c.errors.length);
    for (const e of errors) expect(c.expect.map(([endpoint]) => endpoint)).toContain(e.properties.endpoint);
    for (const [message, tracked] of c.errors) {
      const matching = errors.filter((e) => JSON.stringify(e.properties).includes(message));
      expect(matching).toHaveLength(1);
      // Here the 5xx ones are the app's failures; the others, a client's (a guard's no, a missing book, a bad field).
      expect(matching[0].properties.error_type).toBe(tracked ? 'application_error' : 'client_error');
    }
    const tracked = c.errors.filter(([, t]) => t).length;
    expect(events.filter((e) => e.event === '$exception')).toHaveLength(tracked);
    expect(sentry.eventsFor(ids[i])).toHaveLength(tracked);
  });
});

import { jest } from '@jest/globals';
import {
  BadGatewayException,
  BadRequestException,
  ForbiddenException,
  HttpException,
  InternalServerErrorException,
  NotFoundException,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import { categorizeError, ErrorCategory } from './error-categorizer.js';

/** A Node socket error as `net`/`http` emit it. */
function socketError(code: string, message: string, syscall = 'read'): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, syscall, errno: -1 });
}

/** The shape of the openai SDK's `APIError` (and the Azure OpenAI variant). */
class OpenAIStyleError extends Error {
  readonly code: string | null;
  readonly type: string | null;
  readonly param: string | null = null;
  constructor(
    readonly status: number,
    readonly error: { code?: string | null; type?: string | null; message?: string } | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'APIError';
    this.code = error?.code ?? null;
    this.type = error?.type ?? null;
  }
}

/** The shape of the @anthropic-ai/sdk `APIError`: the body sits under `error`. */
class AnthropicStyleError extends Error {
  constructor(
    readonly status: number,
    readonly error: unknown,
    message: string,
  ) {
    super(message);
    this.name = 'BadRequestError';
  }
}

const QUOTA_MESSAGE = 'You exceeded your current quota, please check your plan and billing details.';
const AZURE_FILTER_MESSAGE =
  "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.";
const ANTHROPIC_CREDIT_MESSAGE =
  'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.';

describe('categorizeError', () => {
  describe('connection errors (the client went away)', () => {
    it.each<[string, unknown]>([
      ['ECONNRESET socket error', socketError('ECONNRESET', 'read ECONNRESET')],
      ['EPIPE socket error', socketError('EPIPE', 'write EPIPE', 'write')],
      ['ECONNABORTED socket error', socketError('ECONNABORTED', 'connection aborted')],
      ['ECONNRESET code with an unrelated message', socketError('ECONNRESET', 'something odd happened')],
      ['EPIPE code with an unrelated message', socketError('EPIPE', 'boom')],
      ['"socket hang up" with ECONNRESET code', socketError('ECONNRESET', 'socket hang up')],
      ['"socket hang up" message alone', new Error('socket hang up')],
      ['premature stream close', socketError('ERR_STREAM_PREMATURE_CLOSE', 'Premature close')],
      ['undici socket error', socketError('UND_ERR_SOCKET', 'other side closed')],
      ['"request aborted" (raw-body)', Object.assign(new Error('request aborted'), { type: 'request.aborted', status: 400 })],
      ['AbortError about a request', Object.assign(new Error('The user aborted a request.'), { name: 'AbortError' })],
      ['code nested under error', { error: { code: 'ECONNRESET' } }],
      ['a thrown string', 'socket hang up'],
    ])('%s → connection_error', (_label, error) => {
      expect(categorizeError(error)).toBe(ErrorCategory.Connection);
    });
  });

  describe('LLM content filters', () => {
    it.each<[string, unknown]>([
      [
        'OpenAI 400 code content_filter',
        new OpenAIStyleError(400, { code: 'content_filter', type: 'invalid_request_error' }, '400 Bad request'),
      ],
      [
        'OpenAI 400 code content_policy_violation',
        new OpenAIStyleError(400, { code: 'content_policy_violation', type: 'invalid_request_error' }, '400 Your request was rejected'),
      ],
      ['Azure content management policy (message only)', new Error(AZURE_FILTER_MESSAGE)],
      ['Azure 400 with code and message', new OpenAIStyleError(400, { code: 'content_filter' }, `400 ${AZURE_FILTER_MESSAGE}`)],
      ['responsible AI policy violation code', { status: 400, code: 'responsible_ai_policy_violation', message: 'Bad request' }],
      ['nested error.code', { status: 400, error: { code: 'content_policy_violation', type: 'invalid_request_error' } }],
      ['nested error.type', { error: { type: 'content_filter' } }],
      ['finish_reason content_filter', { finish_reason: 'content_filter', message: 'generation stopped' }],
    ])('%s → content_filter', (_label, error) => {
      expect(categorizeError(error)).toBe(ErrorCategory.ContentFilter);
    });
  });

  describe('quota and billing', () => {
    it.each<[string, unknown]>([
      [
        'OpenAI 429 insufficient_quota',
        new OpenAIStyleError(
          429,
          { code: 'insufficient_quota', type: 'insufficient_quota', message: QUOTA_MESSAGE },
          `429 ${QUOTA_MESSAGE}`,
        ),
      ],
      ['insufficient_quota code alone', new OpenAIStyleError(429, { code: 'insufficient_quota' }, '429 error')],
      ['quota message alone', Object.assign(new Error(QUOTA_MESSAGE), { status: 429 })],
      [
        'Anthropic credit balance',
        new AnthropicStyleError(
          400,
          { type: 'error', error: { type: 'invalid_request_error', message: ANTHROPIC_CREDIT_MESSAGE } },
          `400 ${JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: ANTHROPIC_CREDIT_MESSAGE } })}`,
        ),
      ],
      ['Anthropic credit balance, plain message', new Error(ANTHROPIC_CREDIT_MESSAGE)],
      ['credit balance wording alone', new Error('Your credit balance is too low to access the Anthropic API')],
      ['status 402', { status: 402, message: 'Request failed' }],
      ['statusCode 402', { statusCode: 402, message: 'Request failed' }],
      ['HttpException 402', new HttpException('Upgrade needed', 402)],
      ['nested error.type insufficient_quota', { error: { type: 'insufficient_quota' } }],
      ['nested error.code billing_hard_limit_reached', { status: 400, error: { code: 'billing_hard_limit_reached' } }],
    ])('%s → quota_error', (_label, error) => {
      expect(categorizeError(error)).toBe(ErrorCategory.Quota);
    });

    it('does not call a plain rate limit (429 rate_limit_exceeded) a quota error', () => {
      const rateLimit = new OpenAIStyleError(
        429,
        { code: 'rate_limit_exceeded', type: 'requests' },
        '429 Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.',
      );
      expect(categorizeError(rateLimit)).toBe(ErrorCategory.Client);
    });
  });

  describe('cause chains', () => {
    it('finds a connection error two causes deep', () => {
      const root = socketError('ECONNRESET', 'read ECONNRESET');
      const middle = new Error('upstream call failed', { cause: root });
      const top = new Error('could not answer the chat request', { cause: middle });
      expect(categorizeError(top)).toBe(ErrorCategory.Connection);
    });

    it('finds a quota error three causes deep, under a 500 HttpException', () => {
      const quota = new OpenAIStyleError(429, { code: 'insufficient_quota' }, `429 ${QUOTA_MESSAGE}`);
      const a = new Error('completion failed', { cause: quota });
      const b = new Error('chat service failed', { cause: a });
      const top = new InternalServerErrorException('Chat failed', { cause: b });
      expect(categorizeError(top)).toBe(ErrorCategory.Quota);
    });

    it('finds a content filter in a non-Error cause object', () => {
      const top = new Error('generation failed', { cause: { error: { code: 'content_filter' } } });
      expect(categorizeError(top)).toBe(ErrorCategory.ContentFilter);
    });

    it('an outer built-in match wins over a different inner one', () => {
      const top = Object.assign(new Error('write EPIPE', { cause: new Error(QUOTA_MESSAGE) }), { code: 'EPIPE' });
      expect(categorizeError(top)).toBe(ErrorCategory.Connection);
    });

    it('terminates on a circular cause chain', () => {
      const a: any = new Error('a');
      const b: any = new Error('b', { cause: a });
      a.cause = b;
      expect(categorizeError(a)).toBe(ErrorCategory.Application);
    });

    it('stops walking very deep chains (bounded cost)', () => {
      let error: unknown = socketError('ECONNRESET', 'read ECONNRESET');
      for (let i = 0; i < 50; i++) error = new Error(`wrapper ${i}`, { cause: error });
      expect(categorizeError(error)).toBe(ErrorCategory.Application);
    });
  });

  describe('Nest HttpExceptions', () => {
    it.each<[string, unknown, string]>([
      ['BadRequestException', new BadRequestException(['name must be a string']), ErrorCategory.Client],
      ['NotFoundException', new NotFoundException('Item 42 not found'), ErrorCategory.Client],
      ['UnauthorizedException', new UnauthorizedException(), ErrorCategory.Client],
      ['ForbiddenException', new ForbiddenException(), ErrorCategory.Client],
      ['HttpException 429', new HttpException('Too Many Requests', 429), ErrorCategory.Client],
      ['InternalServerErrorException', new InternalServerErrorException(), ErrorCategory.Application],
      ['BadGatewayException', new BadGatewayException(), ErrorCategory.Application],
      ['ServiceUnavailableException', new ServiceUnavailableException(), ErrorCategory.Application],
      ['plain object with statusCode 404', { statusCode: 404, message: 'nope' }, ErrorCategory.Client],
      ['plain object with status 503', { status: 503, message: 'nope' }, ErrorCategory.Application],
    ])('%s → %s', (_label, error, expected) => {
      expect(categorizeError(error)).toBe(expected);
    });

    it('uses the status field when getStatus throws', () => {
      const error = {
        status: 404,
        getStatus() {
          throw new Error('broken');
        },
      };
      expect(categorizeError(error)).toBe(ErrorCategory.Client);
    });
  });

  describe('application errors and non-Error values', () => {
    const circular: any = { message: 'loop' };
    circular.self = circular;
    circular.cause = circular;
    circular.error = circular;

    const throwingGetters = {};
    for (const key of ['code', 'type', 'error', 'message', 'name', 'status', 'statusCode', 'getStatus', 'cause', 'finish_reason']) {
      Object.defineProperty(throwingGetters, key, {
        enumerable: true,
        get() {
          throw new Error(`getter ${key} throws`);
        },
      });
    }
    const hostileProxy = new Proxy(
      {},
      {
        get() {
          throw new Error('get trap');
        },
        has() {
          throw new Error('has trap');
        },
        getPrototypeOf() {
          throw new Error('getPrototypeOf trap');
        },
        ownKeys() {
          throw new Error('ownKeys trap');
        },
      },
    );

    it.each<[string, unknown]>([
      ['TypeError', new TypeError("Cannot read properties of undefined (reading 'id')")],
      ['RangeError', new RangeError('Invalid array length')],
      ['plain Error', new Error('Something broke')],
      ['AbortError without client/request wording', Object.assign(new Error('This operation was aborted'), { name: 'AbortError' })],
      ['string', 'something failed'],
      ['null', null],
      ['undefined', undefined],
      ['number', 42],
      ['boolean', false],
      ['Symbol', Symbol('boom')],
      ['BigInt', 10n],
      ['function', () => 'x'],
      ['circular object', circular],
      ['object whose getters throw', throwingGetters],
      ['Proxy whose traps throw', hostileProxy],
      ['Object.create(null)', Object.create(null)],
    ])('%s → application_error without throwing', (_label, error) => {
      expect(() => categorizeError(error)).not.toThrow();
      expect(categorizeError(error)).toBe(ErrorCategory.Application);
    });
  });

  describe('custom rules', () => {
    const reset = socketError('ECONNRESET', 'read ECONNRESET');

    it('a custom category wins over the built-in one, and receives the thrown value', () => {
      const rule = jest.fn<(error: unknown) => string>(() => 'llm_timeout');
      expect(categorizeError(reset, rule)).toBe('llm_timeout');
      expect(rule).toHaveBeenCalledWith(reset);
    });

    it('a custom category applies to otherwise application errors', () => {
      const rule = (error: unknown) => (error instanceof TypeError ? 'bug' : undefined);
      expect(categorizeError(new TypeError('x is not a function'), rule)).toBe('bug');
    });

    it.each<[string, (error: unknown) => string | null | undefined]>([
      ['undefined', () => undefined],
      ['null', () => null],
      ['an empty string', () => ''],
      ['a non-string', () => 42 as unknown as string],
    ])('a rule returning %s falls through to the built-in rules', (_label, rule) => {
      expect(categorizeError(reset, rule)).toBe(ErrorCategory.Connection);
      expect(categorizeError(new NotFoundException(), rule)).toBe(ErrorCategory.Client);
      expect(categorizeError(new Error('boom'), rule)).toBe(ErrorCategory.Application);
    });

    it('a throwing rule falls through and categorizeError does not throw', () => {
      const rule = () => {
        throw new Error('rule is broken');
      };
      expect(() => categorizeError(reset, rule)).not.toThrow();
      expect(categorizeError(reset, rule)).toBe(ErrorCategory.Connection);
      expect(categorizeError(new BadRequestException(), rule)).toBe(ErrorCategory.Client);
    });

    it('a very long custom category is cut to 100 characters', () => {
      expect(categorizeError(reset, () => 'x'.repeat(500))).toBe('x'.repeat(100));
    });
  });

  // The quota/content-filter message heuristics match domain words anywhere in
  // an application's own error messages. These document false positives.
  describe('message heuristics do not misfire on ordinary application errors', () => {
    it('a TypeError about a "billingAddress" property is an application error, not quota', () => {
      const error = new TypeError("Cannot read properties of undefined (reading 'billingAddress')");
      expect(categorizeError(error)).toBe(ErrorCategory.Application);
    });

    it('a NotFoundException about a billing account is a client error, not quota', () => {
      expect(categorizeError(new NotFoundException('Billing account 42 not found'))).toBe(ErrorCategory.Client);
    });
  });
});

describe('categorizeError with a rule list', () => {
  const rules = [
    { category: 'rate_limited', match: 'rate_limit_exceeded' },
    { category: 'model_overloaded', match: /overloaded/i },
    { category: 'vector_db', match: (error: unknown) => (error as { service?: string })?.service === 'pinecone' },
  ];

  it.each<[string, unknown, string]>([
    ['a code', Object.assign(new Error('slow down'), { code: 'rate_limit_exceeded' }), 'rate_limited'],
    ['a nested provider code', Object.assign(new Error('x'), { error: { type: 'rate_limit_exceeded' } }), 'rate_limited'],
    ['a message pattern', new Error('Anthropic API is Overloaded'), 'model_overloaded'],
    ['a predicate', Object.assign(new Error('timeout'), { service: 'pinecone' }), 'vector_db'],
    ['a cause', new Error('wrapped', { cause: new Error('server overloaded') }), 'model_overloaded'],
    ['no rule, then the built-in ones', Object.assign(new Error('x'), { code: 'ECONNRESET' }), 'connection_error'],
  ])('matches %s', (_label, error, category) => {
    expect(categorizeError(error, undefined, rules)).toBe(category);
  });

  it('runs after categorizeError and before the built-in rules', () => {
    const quotaAndOverloaded = Object.assign(new Error('overloaded: insufficient_quota'), { code: 'insufficient_quota' });
    expect(categorizeError(quotaAndOverloaded, undefined, rules)).toBe('model_overloaded');
    expect(categorizeError(quotaAndOverloaded, () => 'mine', rules)).toBe('mine');
  });

  it('treats a throwing predicate as no match', () => {
    const throwing = [
      {
        category: 'never',
        match: () => {
          throw new Error('boom');
        },
      },
    ];
    expect(categorizeError(new TypeError('x'), undefined, throwing)).toBe('application_error');
  });
});

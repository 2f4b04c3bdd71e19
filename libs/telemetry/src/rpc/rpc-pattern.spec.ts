import { NotFoundException } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { MAX_PATTERN, rpcEndpoint, rpcStatusOf } from './rpc-pattern.js';

describe('rpcEndpoint', () => {
  it('names a string pattern as it is', () => {
    expect(rpcEndpoint('users.create')).toBe('rpc:users.create');
  });

  it('stringifies an object route, and never throws', () => {
    expect(rpcEndpoint({ cmd: 'sum' })).toBe('rpc:{"cmd":"sum"}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(rpcEndpoint(cyclic)).toBe('rpc:[object Object]');
    expect(rpcEndpoint(undefined)).toBe('rpc:undefined');
  });

  it('is bounded', () => {
    const endpoint = rpcEndpoint('x'.repeat(10_000));
    expect(endpoint.length).toBe('rpc:'.length + MAX_PATTERN + 1);
    expect(endpoint.endsWith('…')).toBe(true);
  });
});

describe('rpcStatusOf', () => {
  it("is an HttpException's own status", () => {
    expect(rpcStatusOf(new NotFoundException())).toBe(404);
  });

  it('reads a 4xx or 5xx statusCode or status on the error or an RpcException payload', () => {
    expect(rpcStatusOf(new RpcException({ statusCode: 409, message: 'taken' }))).toBe(409);
    expect(rpcStatusOf(new RpcException({ status: 503 }))).toBe(503);
    expect(rpcStatusOf(Object.assign(new Error('x'), { statusCode: 422 }))).toBe(422);
  });

  it('is 500 for anything else: plain errors, RpcExceptions that say nothing, odd values', () => {
    expect(rpcStatusOf(new Error('boom'))).toBe(500);
    expect(rpcStatusOf(new RpcException({ code: 'E_QUOTA' }))).toBe(500);
    expect(rpcStatusOf(new RpcException('words'))).toBe(500);
    expect(rpcStatusOf(new RpcException({ status: 'error' }))).toBe(500);
    expect(rpcStatusOf(new RpcException({ statusCode: 200 }))).toBe(500);
    expect(rpcStatusOf(null)).toBe(500);
    expect(rpcStatusOf('text')).toBe(500);
    const hostile = {
      get getError() {
        throw new Error('no');
      },
    };
    expect(rpcStatusOf(hostile)).toBe(500);
  });
});

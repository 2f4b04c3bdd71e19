import { HttpException } from '@nestjs/common';
import { safeString, truncate } from './bounded.js';

export interface ErrorDetails {
  /** The message, bounded. */
  message: string;
  /** The class name (`TypeError`, `NotFoundException`), or the kind of value thrown (`string`, `null`). */
  exceptionType: string;
  /** Stack with its `cause` chain, at most the traceback limit. */
  traceback: string;
}

const MAX_CAUSES_IN_TRACEBACK = 3;

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  try {
    const name = (value as object).constructor?.name;
    return typeof name === 'string' && name !== '' ? name.slice(0, 100) : 'Object';
  } catch {
    return 'Object';
  }
}

function messageOf(value: unknown): string {
  try {
    if (value instanceof HttpException) {
      const response: unknown = value.getResponse();
      if (typeof response === 'string') return safeString(response);
      const message = response !== null && typeof response === 'object' ? (response as { message?: unknown }).message : undefined;
      return safeString(message ?? value.message);
    }
    if (value instanceof Error) return safeString(value.message);
    return safeString(value);
  } catch {
    return '[unreadable message]';
  }
}

function stackOf(value: unknown): string | undefined {
  try {
    const stack = value instanceof Error ? value.stack : undefined;
    return typeof stack === 'string' ? stack : undefined;
  } catch {
    return undefined;
  }
}

/** What `api_error` says of a thrown value: works for anything that can be thrown. */
export function describeError(value: unknown, tracebackLimit: number): ErrorDetails {
  const exceptionType = typeName(value);
  const message = messageOf(value);
  // Collect only as much stack text as the limit can hold: megabyte stacks stay cheap.
  const parts: string[] = [];
  let length = 0;
  let current: unknown = value;
  for (let i = 0; i <= MAX_CAUSES_IN_TRACEBACK && current !== undefined && current !== null && length < tracebackLimit; i++) {
    const stack = stackOf(current) ?? `${typeName(current)}: ${safeString(current)}`;
    const part = (i === 0 ? '' : '\nCaused by: ') + stack.slice(0, tracebackLimit + 1);
    parts.push(part);
    length += part.length;
    try {
      current = current instanceof Error ? current.cause : undefined;
    } catch {
      current = undefined;
    }
  }
  return { message, exceptionType, traceback: truncate(parts.join(''), tracebackLimit) };
}

import { HttpException } from '@nestjs/common';
import { safeString, truncate } from '../privacy/bounded.js';

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

/** Twice what is sent: redaction runs before the final cut. */
const MESSAGE_READ_LIMIT = 4000;

function messageOf(value: unknown): string {
  try {
    if (value instanceof HttpException) {
      const response: unknown = value.getResponse();
      if (typeof response === 'string') return safeString(response, MESSAGE_READ_LIMIT);
      const message = response !== null && typeof response === 'object' ? (response as { message?: unknown }).message : undefined;
      return safeString(message ?? value.message, MESSAGE_READ_LIMIT);
    }
    if (value instanceof Error) return safeString(value.message, MESSAGE_READ_LIMIT);
    return safeString(value, MESSAGE_READ_LIMIT);
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

/**
 * What `api_error` says of a thrown value: works for anything that can be
 * thrown. `redact` cleans the message and the stack before they are cut, so a
 * secret is never half kept at the cut.
 */
export function describeError(value: unknown, tracebackLimit: number, redact: (text: string) => string = (t) => t): ErrorDetails {
  const exceptionType = typeName(value);
  const message = truncate(redact(messageOf(value)));
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
  return { message, exceptionType, traceback: truncate(redact(parts.join('')), tracebackLimit) };
}

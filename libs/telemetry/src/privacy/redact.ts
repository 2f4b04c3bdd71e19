/** What replaces a secret. */
export const REDACTED = '[REDACTED]';

/**
 * Property names whose values are never sent, matched case-insensitively with
 * `-` and `_` ignored: anywhere in the name for the unmistakable ones
 * (`db_password`, `x-api-key`, `stripeApiKey`), whole for short ones (`token`,
 * but not `tokens_used`).
 */
const SENSITIVE_KEY =
  /password|passwd|secret|apikey|authorization|cookie|privatekey|accesstoken|refreshtoken|idtoken|authtoken|sessiontoken|creditcard|cardnumber|^(?:pwd|token|auth|session|cvv|ssn)$/;

export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEY.test(key.toLowerCase().replace(/[-_]/g, ''));
}

/**
 * Shapes of secrets that turn up in error messages and stack traces. Each
 * keeps what identifies the kind (`Bearer `, `phc_`, `password=`) and replaces
 * the secret itself.
 */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  // Authorization header values
  // (16 characters or more: "Token validation failed" and "Basic authentication" are no tokens)
  [/\b(Bearer|Basic|Token)\s+[A-Za-z0-9\-._~+/]{16,}=*/gi, `$1 ${REDACTED}`],
  // JSON Web Tokens
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}/g, REDACTED],
  // PostHog project and personal keys, OpenAI/Anthropic-style keys, Stripe, GitHub, Slack
  [/\b(phc|phx)_[A-Za-z0-9]{8,}/g, `$1_${REDACTED}`],
  [/\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{12,}/g, `sk-${REDACTED}`],
  [/\b(sk|pk|rk)_(live|test)_[A-Za-z0-9]{8,}/g, `$1_$2_${REDACTED}`],
  [/\bgh[pousr]_[A-Za-z0-9]{20,}/g, REDACTED],
  [/\bxox[abprs]-[A-Za-z0-9-]{10,}/g, REDACTED],
  // AWS access key ids, and secret keys after their usual names
  [/\b(AKIA|ASIA)[A-Z0-9]{16}\b/g, REDACTED],
  // Credentials in URLs: scheme://user:password@host
  // (bounded lengths keep the scan linear on long runs such as `a.a.a.…`)
  [/\b([a-z][a-z0-9+.-]{0,30}:\/\/)[^\s:/@]{1,256}:[^\s@/]{1,256}@/gi, `$1${REDACTED}@`],
  // Query strings of URLs: they carry tokens, emails, ids
  [/\b(https?:\/\/[^\s?#"'<>]+)\?(?!\[query removed\])[^\s#"'<>]*/gi, '$1?[query removed]'],
  // key=value and "key": "value" pairs of sensitive keys
  [
    /\b(password|passwd|pwd|secret|token|access_token|refresh_token|api[_-]?key|client_secret|authorization|cookie)(["']?\s*[:=]\s*["']?)[^\s"'&,;}]+/gi,
    `$1$2${REDACTED}`,
  ],
];

/**
 * Removes obvious secrets from text that leaves the process (error messages,
 * tracebacks): tokens, API keys, credentials and query strings in URLs,
 * values of sensitive keys. Never throws.
 */
export function redactSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

const EMAIL = /[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+/g;

/** Email addresses, redacted only when the app asks (`redactEmails`). */
export function redactEmails(text: string): string {
  return text.replace(EMAIL, '[email]');
}

/** Redaction of one text, as the module applies it everywhere (the `REDACTOR` provider). */
export type Redactor = (text: string) => string;

/** The app's own redaction: patterns whose matches become `[REDACTED]`, or a function. */
export type RedactOption = ((text: string) => string) | RegExp[];

/**
 * The built-in redaction (and emails, when asked), then the app's own
 * `redact`; when that throws the text is not sent at all (`[REDACTED]`) and
 * `onFailure` hears of it.
 */
export function composeRedactor(own: RedactOption | undefined, onFailure: (error: unknown) => void, emails = false): (text: string) => string {
  const builtIn = emails ? (text: string) => redactEmails(redactSecrets(text)) : redactSecrets;
  if (!own) return builtIn;
  const apply = Array.isArray(own)
    ? (text: string) => own.reduce((out, pattern) => out.replace(pattern.global ? pattern : new RegExp(pattern.source, pattern.flags + 'g'), REDACTED), text)
    : own;
  return (text) => {
    try {
      const result = apply(builtIn(text));
      return typeof result === 'string' ? result : REDACTED;
    } catch (error) {
      onFailure(error);
      return REDACTED;
    }
  };
}

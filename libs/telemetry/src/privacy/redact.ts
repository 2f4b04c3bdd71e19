import { GITLEAKS_RULES } from './gitleaks-rules.generated.js';

/** What replaces a secret. */
export const REDACTED = '[REDACTED]';

/**
 * Property names whose values are never sent, matched case-insensitively with
 * `-` and `_` ignored: anywhere in the name for the unmistakable ones
 * (`db_password`, `x-api-key`, `stripeApiKey`), whole for short ones (`token`,
 * but not `tokens_used`).
 */
const SENSITIVE_KEY =
  /password|passwd|secret|apikey|authorization|cookie|privatekey|accesstoken|refreshtoken|idtoken|authtoken|sessiontoken|accountkey|accesskey|credential|creditcard|cardnumber|^(?:pwd|token|auth|session|cvv|ssn)$/;

export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEY.test(key.toLowerCase().replace(/[-_]/g, ''));
}

/**
 * Longest text the built-in redaction reads: longer texts are cut first (and the rest is not sent), so no
 * input costs more than this many characters of matching. Messages are sent cut to 2000 characters (read:
 * 4000), tracebacks to `tracebackLimit` (default 5000).
 */
export const MAX_REDACTED_INPUT = 32_768;

/** Shannon entropy of `text`, in bits per character. */
export function entropy(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<number, number>();
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

interface CompiledRule {
  id: string;
  regex: RegExp;
  group: number;
  entropy: number;
  keywords: string[];
}

/**
 * gitleaks' rules, compiled once. `generic-api-key` is left to the module's own key=value pass below (the same
 * idea: keys named like secrets, values of high entropy), which knows more key names.
 */
interface CompiledRules {
  rules: CompiledRule[];
  /** Rules without a keyword: they always run (none in the current table). */
  always: CompiledRule[];
  /** Keywords by their first two characters (lowercase), each with the rules it enables. */
  byPrefix: Map<number, [string, CompiledRule[]][]>;
}
let compiled: CompiledRules | undefined;
const pairCode = (text: string, at: number) => (text.charCodeAt(at) << 16) | text.charCodeAt(at + 1);
function gitleaksRules(): CompiledRules {
  if (compiled) return compiled;
  const rules = GITLEAKS_RULES.filter((rule) => rule.id !== 'generic-api-key').map((rule) => ({
    id: rule.id,
    regex: new RegExp(rule.source, rule.flags.includes('d') ? rule.flags : rule.flags + 'd'),
    group: rule.group,
    entropy: rule.entropy,
    keywords: rule.keywords,
  }));
  const byKeyword = new Map<string, CompiledRule[]>();
  for (const rule of rules) for (const keyword of rule.keywords) byKeyword.set(keyword, [...(byKeyword.get(keyword) ?? []), rule]);
  const byPrefix = new Map<number, [string, CompiledRule[]][]>();
  for (const [keyword, enabled] of byKeyword) {
    if (keyword.length < 2) continue;
    const code = pairCode(keyword, 0);
    byPrefix.set(code, [...(byPrefix.get(code) ?? []), [keyword, enabled]]);
  }
  compiled = { rules, always: rules.filter((rule) => rule.keywords.length === 0 || rule.keywords.some((k) => k.length < 2)), byPrefix };
  return compiled;
}

/** The rules whose keyword the text holds, found in one pass over it (gitleaks' keyword prefilter). */
function rulesFor(text: string): CompiledRule[] {
  const { rules, always, byPrefix } = gitleaksRules();
  const lower = text.toLowerCase();
  const enabled = new Set<CompiledRule>(always);
  const seen = new Set<string>();
  for (let i = 0; i + 1 < lower.length; i++) {
    const candidates = byPrefix.get(pairCode(lower, i));
    if (!candidates) continue;
    for (const [keyword, keywordRules] of candidates) {
      if (seen.has(keyword) || !lower.startsWith(keyword, i)) continue;
      seen.add(keyword);
      for (const rule of keywordRules) enabled.add(rule);
    }
  }
  // In the table's order, as gitleaks applies them.
  return enabled.size === 0 ? [] : rules.filter((rule) => enabled.has(rule));
}

/** Replaces the secret of every match of gitleaks' rules (those whose keyword the text holds) with `[REDACTED]`. */
function redactByRules(text: string): string {
  const spans: [number, number][] = [];
  for (const rule of rulesFor(text)) {
    rule.regex.lastIndex = 0;
    for (const match of text.matchAll(rule.regex)) {
      // The rules' regexes have the `d` flag: every match has its indices.
      const indices = match.indices;
      if (!indices) continue;
      let g = rule.group;
      if (g === 0) for (let i = 1; i < match.length && g === 0; i++) if (match[i] !== undefined && match[i] !== '') g = i;
      const span = indices[g] ?? indices[0];
      if (!span || span[1] <= span[0]) continue;
      const secret = text.slice(span[0], span[1]);
      if (secret.includes(REDACTED)) continue;
      if (rule.entropy > 0 && entropy(secret) < rule.entropy) continue;
      spans.push([span[0], span[1]]);
    }
  }
  if (spans.length === 0) return text;
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = '';
  let at = 0;
  for (const [from, to] of spans) {
    if (to <= at) continue;
    out += text.slice(at, Math.max(at, from)) + (from >= at ? REDACTED : '');
    at = to;
  }
  return out + text.slice(at);
}

/** PEM and OpenSSH private key blocks, whole (up to the end of the text when cut before their END line). */
const PRIVATE_KEY_BEGIN = /-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----/gi;
function redactPrivateKeys(text: string): string {
  if (!/-----BEGIN/i.test(text)) return text;
  let out = '';
  let at = 0;
  PRIVATE_KEY_BEGIN.lastIndex = 0;
  for (let m = PRIVATE_KEY_BEGIN.exec(text); m; m = PRIVATE_KEY_BEGIN.exec(text)) {
    const bodyFrom = m.index + m[0].length;
    if (text.startsWith(REDACTED, bodyFrom)) continue;
    out += text.slice(at, bodyFrom) + REDACTED;
    const end = text.indexOf('-----END', bodyFrom);
    if (end < 0) return out; // the rest is key material
    at = end;
    PRIVATE_KEY_BEGIN.lastIndex = end;
  }
  return out + text.slice(at);
}

/**
 * URLs, read token by token (linear: no pattern rescans a run of `http://http://…`): credentials
 * (`scheme://user:pass@`, `redis://:pass@`, passwords with `@` or `/`) become `[REDACTED]`, and the query string
 * of an http(s) URL `[query removed]`.
 */
const URL_TOKEN = /\b[A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/(?:\?\[query removed\]|[^\s"'<>`]){1,4096}/g;
const QUERY_REMOVED = '[query removed]';
function redactUrl(url: string): string {
  const schemeEnd = url.indexOf('://') + 3;
  const scheme = url.slice(0, schemeEnd);
  let rest = url.slice(schemeEnd);
  // Credentials: up to the last `@` before the query, when what precedes it is `user:password` (not `host:port/…`).
  const queryAt = rest.search(/[?#]/);
  const authorityAndPath = queryAt < 0 ? rest : rest.slice(0, queryAt);
  const at = authorityAndPath.lastIndexOf('@');
  if (at > 0) {
    const userinfo = authorityAndPath.slice(0, at);
    const colon = userinfo.indexOf(':');
    if (
      colon >= 0 &&
      !userinfo.slice(0, colon).includes('/') &&
      !/^\d{1,5}(?:\/|$)/.test(userinfo.slice(colon + 1)) &&
      userinfo !== REDACTED
    ) {
      rest = `${REDACTED}${rest.slice(at)}`;
    }
  }
  if (/^https?:\/\/$/i.test(scheme)) {
    const q = rest.indexOf('?');
    const hash = rest.indexOf('#');
    if (q > 0 && (hash < 0 || q < hash) && !rest.startsWith(QUERY_REMOVED, q + 1)) {
      rest = `${rest.slice(0, q)}?${QUERY_REMOVED}${hash > q ? rest.slice(hash) : ''}`;
    }
  }
  return scheme + rest;
}

/**
 * `key=value`, `key: value` and `"key": "value"` pairs (JSON, escaped JSON, env files, connection strings): the
 * value goes when the key is named like a secret (`isSensitiveKey`, or ending in `token`, `secret`, `key`, …),
 * or, for keys that only may hold one (`…key`, `…sig`, `…cred…`), when the value looks random (high entropy).
 */
const KEY_VALUE =
  /(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]{0,40}?(?:pass|pwd|secret|token|key|auth|cookie|session|cred|sig|salt|dsn|ssn|cvv|card)[A-Za-z0-9_.-]{0,40})(\\?["']?[ \t]{0,3}(?:=>|[:=])[ \t]{0,3})(\\"(?:[^"\\]|\\[^"]){0,4096}\\"|"(?:[^"\\\n]|\\.){0,4096}"|'(?:[^'\\\n]|\\.){0,4096}'|[^\s"'&,;}<>)\]]{1,64})/gi;
/** Where an unquoted value ends. */
const VALUE_END = /[\s"'&,;}<>)\]]/;
/** An unquoted value read on past the 64 characters of the pattern, up to its end (at most 4096 characters). */
function valueEnd(text: string, from: number): number {
  const limit = Math.min(text.length, from + 4096);
  let end = from;
  while (end < limit && !VALUE_END.test(text[end])) end++;
  return end;
}
const SENSITIVE_SUFFIX =
  /(?:token|secret|password|passwd|pwd|apikey|accountkey|accesskey|secretkey|privatekey|signingkey|credentials?|sharedaccesskey|connectionstring)$/;
const MAYBE_SENSITIVE = /key|sig|cred|salt|dsn|pass/;
const KeyKind = { Plain: 0, Maybe: 1, Secret: 2 } as const;
type KeyKind = (typeof KeyKind)[keyof typeof KeyKind];
/** What a key name says of its value, remembered for the names seen last (texts repeat their keys). */
const keyKinds = new Map<string, KeyKind>();
function keyKind(key: string): KeyKind {
  let kind = keyKinds.get(key);
  if (kind !== undefined) return kind;
  const normal = key.toLowerCase().replace(/[-_]/g, '');
  const last = normal.slice(normal.lastIndexOf('.') + 1);
  kind =
    isSensitiveKey(key) || isSensitiveKey(last) || SENSITIVE_SUFFIX.test(last)
      ? KeyKind.Secret
      : MAYBE_SENSITIVE.test(normal)
        ? KeyKind.Maybe
        : KeyKind.Plain;
  if (keyKinds.size >= 512) keyKinds.clear();
  keyKinds.set(key, kind);
  return kind;
}
/** An unquoted value up to a nested `key=` or `key:` (base64 padding kept): what is judged random or not. */
function firstPart(value: string): string {
  const end = value.search(/[:=](?!=*$)/);
  return end < 0 ? value : value.slice(0, end);
}
function looksRandom(value: string): boolean {
  if (value.length < 16 || !/^[A-Za-z0-9+/=_.~-]+$/.test(value)) return false;
  const mixed = (/\d/.test(value) && /[a-z]/.test(value) && /[A-Z]/.test(value)) || (value.length >= 32 && /^[a-f0-9]+$/i.test(value));
  return mixed && entropy(value) >= 3.5;
}
/** Prose, not a pair: `session: expired`, `authorization: denied by policy` (a word after `: ` for a key that is also a word). */
const WORD_KEYS = new Set(['session', 'auth', 'authorization', 'token', 'cookie', 'secret']);
function isProse(key: string, sep: string, value: string): boolean {
  return WORD_KEYS.has(key.toLowerCase()) && /:\s/.test(sep) && /^[a-z]{1,12}$/.test(value);
}
function redactKeyValues(text: string): string {
  let out = '';
  let at = 0;
  KEY_VALUE.lastIndex = 0;
  for (let m = KEY_VALUE.exec(text); m; m = KEY_VALUE.exec(text)) {
    const [, key, sep, value] = m as unknown as [string, string, string, string];
    const kind = keyKind(key);
    const quote = value.startsWith('\\"') ? '\\"' : value[0] === '"' || value[0] === "'" ? value[0] : '';
    const inner = quote ? value.slice(quote.length, value.length - quote.length) : value;
    const secret =
      kind !== KeyKind.Plain &&
      inner !== '' &&
      !inner.startsWith('[REDACTED') &&
      !isProse(key, sep, inner) &&
      (kind === KeyKind.Secret || looksRandom(quote ? inner : firstPart(inner)));
    if (secret) {
      // An Authorization value keeps its scheme's redaction (`Bearer [REDACTED]` → `[REDACTED] [REDACTED]`).
      out += text.slice(at, m.index) + `${key}${sep}${quote}${REDACTED}${quote}`;
      at = quote ? m.index + m[0].length : valueEnd(text, m.index + m[0].length);
      KEY_VALUE.lastIndex = at;
    } else {
      // The value may itself hold a pair (`oauth: client_secret=…`): read on from it.
      KEY_VALUE.lastIndex = m.index + key.length + sep.length;
    }
  }
  return out + text.slice(at);
}

/**
 * Pairs of JSON escaped more than once (a JSON text holding escaped JSON, serialised again, as a thrown object's
 * message is): `\\\"password\\\":\\\"…\\\"`. The value goes as `redactKeyValues` decides for a pair.
 */
const NESTED_ESCAPED_PAIR =
  /(\\{2,15}"([A-Za-z0-9_.-]{1,80})\\{2,15}"[ \t]{0,3}:[ \t]{0,3}\\{2,15}")((?:[^"\\]|\\(?!\\{0,14}")){0,4096})(?=\\{1,15}")/g;
function redactNestedEscapedPairs(text: string): string {
  if (!text.includes('\\\\"')) return text;
  return text.replace(NESTED_ESCAPED_PAIR, (pair: string, head: string, key: string, value: string) => {
    const kind = keyKind(key);
    const secret =
      value !== '' && !value.startsWith('[REDACTED') && (kind === KeyKind.Secret || (kind === KeyKind.Maybe && looksRandom(value)));
    return secret ? `${head}${REDACTED}` : pair;
  });
}

/** A Luhn-valid 15 or 16 digit card number (Amex, Visa, Mastercard, Discover), spaces or dashes allowed. */
const CARD = /(?<![\d-])[3-6]\d{3}(?:[ -]?\d{4}){2}[ -]?\d{3,4}(?!\d)/g;
function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

/** A bare token that looks random: 32+ characters of base64/hex with upper, lower and digits, high entropy (AWS secret keys, API keys). */
const BARE_TOKEN = /(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{32,512}={0,2}(?![A-Za-z0-9+/=_-])/g;
function redactRandomTokens(text: string): string {
  return text.replace(BARE_TOKEN, (token) => {
    if (!/[a-z]/.test(token) || !/[A-Z]/.test(token) || !/\d/.test(token)) return token;
    if (
      token.includes('/') &&
      token.split('/').some((part) => /^[a-z]{3,}$/i.test(part) && part.length >= 3) &&
      !/^[A-Za-z0-9+/]{40}$/.test(token)
    )
      return token; // a path
    return entropy(token) >= 4.2 ? REDACTED : token;
  });
}

/**
 * Shapes of secrets that turn up in error messages and stack traces, written here (gitleaks' rules, above, cover
 * providers' keys). Each keeps what identifies the kind (`Bearer `, `phc_`, `password=`) and replaces the secret.
 * Every repetition is bounded, so a pattern reads at most a few thousand characters from where it starts.
 */
const SECRET_PATTERNS: [RegExp, string][] = [
  // Authorization header values: Bearer with any token of 6 characters or more; Basic and Token only when they
  // look like credentials ("Token validation failed" and "Basic authentication" are no tokens)
  [/\b(Bearer)\s{1,10}(?!\[REDACTED\])[A-Za-z0-9\-._~+/]{6,4096}={0,3}/gi, `$1 ${REDACTED}`],
  [/\b(Basic|Token)\s{1,10}(?=[A-Za-z0-9\-._~+/]{0,4096}\d)[A-Za-z0-9\-._~+/]{8,4096}={0,3}/gi, `$1 ${REDACTED}`],
  [/\b(Basic|Token)\s{1,10}(?!\[REDACTED\])[A-Za-z0-9\-._~+/]{16,4096}={0,3}/gi, `$1 ${REDACTED}`],
  // JSON Web Tokens
  [/\beyJ[A-Za-z0-9_-]{5,4096}\.[A-Za-z0-9_-]{5,4096}\.[A-Za-z0-9_-]{5,4096}/g, REDACTED],
  // PostHog project and personal keys, OpenAI/Anthropic-style keys, Stripe, GitHub, Slack
  [/\b(phc|phx)_[A-Za-z0-9]{8,256}/g, `$1_${REDACTED}`],
  [/\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{12,512}/g, `sk-${REDACTED}`],
  [/\b(sk|pk|rk)_(live|test)_[A-Za-z0-9]{8,256}/g, `$1_$2_${REDACTED}`],
  [/\bwhsec_[A-Za-z0-9+/=]{16,256}/g, `whsec_${REDACTED}`],
  [/\bgh[pousr]_[A-Za-z0-9]{20,256}/g, REDACTED],
  [/\bgithub_pat_[A-Za-z0-9_]{20,256}/g, REDACTED],
  [/\bglpat-[A-Za-z0-9_-]{20,256}/g, REDACTED],
  [/\bxox[abeprs]-[A-Za-z0-9-]{10,256}/g, REDACTED],
  [/\bxapp-[A-Za-z0-9-]{10,256}/g, REDACTED],
  // Google API keys and OAuth access tokens
  [/\bAIza[A-Za-z0-9_-]{35}/g, REDACTED],
  [/\bya29\.[A-Za-z0-9_-]{20,2048}/g, `ya29.${REDACTED}`],
  // npm, Hugging Face, Shopify, SendGrid, Twilio, Mailgun, Telegram bot tokens
  [/\bnpm_[A-Za-z0-9]{36}/g, REDACTED],
  [/\bhf_[A-Za-z0-9]{30,64}/g, REDACTED],
  [/\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}/g, REDACTED],
  [/\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}/g, REDACTED],
  [/\b(?:SK|AC)[0-9a-fA-F]{32}\b/g, REDACTED],
  [/\bkey-[a-f0-9]{32}\b/g, `key-${REDACTED}`],
  [/(?<![0-9])\d{6,12}:AA[A-Za-z0-9_-]{30,40}/g, REDACTED],
  [/\bNRAK-[A-Z0-9]{27}\b/gi, REDACTED],
  // Slack and Discord webhooks (their path is the secret)
  [/\b(hooks\.slack\.com\/(?:services|workflows|triggers))\/[A-Za-z0-9_/+-]{8,256}/gi, `$1/${REDACTED}`],
  [/\b(discord(?:app)?\.com\/api\/webhooks)\/[0-9]{5,30}\/[A-Za-z0-9_-]{20,256}/gi, `$1/${REDACTED}`],
  // AWS access key ids
  [/\b(AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b/g, REDACTED],
];

/** Cuts `text` to `MAX_REDACTED_INPUT` characters, at a space or line end when one is near, so no secret is half kept. */
function capped(text: string): string {
  if (text.length <= MAX_REDACTED_INPUT) return text;
  let end = MAX_REDACTED_INPUT;
  const space = text.slice(end - 256, end).search(/\s[^\s]*$/);
  if (space >= 0) end = end - 256 + space;
  return `${text.slice(0, end)} … [${text.length - end} chars not read]`;
}

/** The built-in redaction on text already capped: every step is linear in the length of the text. */
export function redactCapped(text: string): string {
  let out = redactPrivateKeys(text);
  out = out.replace(URL_TOKEN, redactUrl);
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  out = redactByRules(out);
  out = redactKeyValues(out);
  out = redactNestedEscapedPairs(out);
  out = out.replace(CARD, (card) => (luhn(card.replace(/[ -]/g, '')) ? REDACTED : card));
  out = redactRandomTokens(out);
  return out;
}

/**
 * Removes secrets from text that leaves the process (error messages, tracebacks, `capture()` strings, key names
 * and event names): providers' keys and tokens (gitleaks' rules, and the module's own), private key blocks,
 * credentials and query strings in URLs, values of sensitive keys, card numbers, random-looking tokens. Reads at
 * most `MAX_REDACTED_INPUT` characters (the rest is dropped); linear in that. Never throws.
 */
export function redactSecrets(text: string): string {
  try {
    return redactCapped(capped(text));
  } catch {
    return REDACTED;
  }
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
export function composeRedactor(
  own: RedactOption | undefined,
  onFailure: (error: unknown) => void,
  emails = false,
): (text: string) => string {
  const builtIn = emails ? (text: string) => redactEmails(redactSecrets(text)) : redactSecrets;
  if (!own) return builtIn;
  const apply = Array.isArray(own)
    ? (text: string) =>
        own.reduce(
          (out, pattern) => out.replace(pattern.global ? pattern : new RegExp(pattern.source, pattern.flags + 'g'), REDACTED),
          text,
        )
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

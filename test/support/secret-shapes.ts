/**
 * Real secret shapes as they turn up in error messages and logs, each with the
 * part that must never leave the process. Values are drawn at load time from a
 * seeded generator in each provider's alphabet and length (no literal secret in
 * the repository, the same values on every run).
 */
export interface SecretShape {
  name: string;
  /** How the secret appears in text (a header line, a connection string, a JSON pair, …). */
  text: string;
  /** What must not be found on any wire. */
  secret: string;
}

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = mulberry32(13_2026);
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGITS = '0123456789';
const ALNUM = LOWER + UPPER + DIGITS;
const HEX = '0123456789abcdef';
const B64 = `${ALNUM}+/`;
const B64URL = `${ALNUM}-_`;

/** `n` characters of `alphabet`, always with a digit, an upper- and a lowercase letter when the alphabet has them. */
function draw(alphabet: string, n: number): string {
  for (;;) {
    let out = '';
    for (let i = 0; i < n; i++) out += alphabet[Math.floor(random() * alphabet.length)];
    const needs = [LOWER, UPPER, DIGITS].filter((set) => [...set].some((c) => alphabet.includes(c)));
    if (n < 8 || needs.every((set) => [...out].some((c) => set.includes(c)))) return out;
  }
}

function luhnComplete(prefix: string, length: number): string {
  let body = prefix;
  while (body.length < length - 1) body += DIGITS[Math.floor(random() * 10)];
  for (let d = 0; d < 10; d++) {
    const candidate = body + d;
    let sum = 0;
    for (let i = 0; i < candidate.length; i++) {
      let v = candidate.charCodeAt(candidate.length - 1 - i) - 48;
      if (i % 2 === 1) v = v * 2 > 9 ? v * 2 - 9 : v * 2;
      sum += v;
    }
    if (sum % 10 === 0) return candidate;
  }
  throw new Error('unreachable');
}

const pemBody = (lines: number) => Array.from({ length: lines }, () => draw(B64, 64)).join('\n');

function shape(name: string, make: (secret: string) => string, secret: string): SecretShape {
  return { name, text: make(secret), secret };
}

const rsaBody = pemBody(4);
const opensshBody = pemBody(3);
const ecBody = pemBody(2);
const gcpKeyBody = pemBody(3);
const card = (prefix: string, length: number) => luhnComplete(prefix, length);
const visa = card('4', 16);
const master = card('51', 16);
const amex = card('37', 15);

export const SECRET_SHAPES: SecretShape[] = [
  // Common shapes: tokens of the usual providers, credentials in URLs and key=value pairs
  shape('Bearer token (long)', (s) => `Authorization: Bearer ${s}`, draw(ALNUM, 32)),
  shape('Basic credentials', (s) => `upstream sent Basic ${s}`, Buffer.from(`admin:${draw(ALNUM, 14)}`).toString('base64')),
  shape('JWT', (s) => `jwt malformed: eyJhbGciOiJIUzI1NiJ9.${s}.${draw(B64URL, 43)}`, `eyJ${draw(B64URL, 40)}`),
  shape('PostHog phc_', (s) => `invalid project key phc_${s}`, draw(ALNUM, 43)),
  shape('PostHog phx_', (s) => `personal key phx_${s} rejected`, draw(ALNUM, 40)),
  shape('OpenAI sk-', (s) => `Incorrect API key provided: sk-${s}`, draw(ALNUM, 48)),
  shape('OpenAI sk-proj-', (s) => `key sk-proj-${s}`, draw(B64URL, 64)),
  shape('Anthropic sk-ant-', (s) => `x-api-key sk-ant-api03-${s}`, draw(B64URL, 80)),
  shape('Stripe sk_live_', (s) => `No such customer; key sk_live_${s}`, draw(ALNUM, 40)),
  shape('Stripe rk_live_', (s) => `restricted key rk_live_${s}`, draw(ALNUM, 40)),
  shape('GitHub ghp_', (s) => `Bad credentials ${s}`, `ghp_${draw(ALNUM, 36)}`),
  shape('GitHub gho_', (s) => `oauth token ${s} expired`, `gho_${draw(ALNUM, 36)}`),
  shape('GitHub ghs_', (s) => `installation token ${s}`, `ghs_${draw(ALNUM, 36)}`),
  shape('Slack xoxb-', (s) => `invalid_auth ${s}`, `xoxb-${draw(DIGITS, 12)}-${draw(DIGITS, 13)}-${draw(ALNUM, 24)}`),
  shape('Slack xoxp-', (s) => `token_revoked ${s}`, `xoxp-${draw(DIGITS, 12)}-${draw(DIGITS, 12)}-${draw(DIGITS, 13)}-${draw(HEX, 32)}`),
  shape('AWS AKIA', (s) => `The AWS Access Key Id ${s} does not exist`, `AKIA${draw(UPPER + '234567', 16)}`),
  shape('AWS ASIA', (s) => `session key ${s}`, `ASIA${draw(UPPER + '234567', 16)}`),
  shape('postgres URL credentials', (s) => `connect ECONNREFUSED postgres://app:${s}@db.internal:5432/app`, draw(ALNUM, 18)),
  shape('https URL credentials', (s) => `GET https://admin:${s}@example.com/path failed`, draw(ALNUM, 16)),
  shape('query string token', (s) => `fetch https://api.example.com/v1/users?token=${s}&page=2 failed`, draw(ALNUM, 24)),
  shape('password=', (s) => `login failed with password=${s}`, draw(ALNUM + '!#%*-', 20)),
  shape('JSON "api_key"', (s) => `body: {"api_key": "${s}", "id": 4}`, draw(ALNUM, 28)),
  shape('client_secret=', (s) => `oauth: client_secret=${s} invalid`, draw(ALNUM, 32)),
  shape("'password': '…'", (s) => `config {'password': '${s}'}`, draw(ALNUM + '@-', 18)),
  // Rarer providers and formats (private key blocks, webhooks, card numbers, JSON secrets)
  shape('Slack xapp-', (s) => `socket mode refused ${s}`, `xapp-1-${draw(UPPER + DIGITS, 11)}-${draw(DIGITS, 13)}-${draw(HEX, 64)}`),
  shape(
    'Slack webhook URL',
    (s) => `POST https://hooks.slack.com/services/${s} failed: 404`,
    `T${draw(UPPER + DIGITS, 10)}/B${draw(UPPER + DIGITS, 10)}/${draw(ALNUM, 24)}`,
  ),
  shape('GitHub github_pat_', (s) => `Bad credentials ${s}`, `github_pat_${draw(ALNUM, 22)}_${draw(ALNUM, 59)}`),
  shape('GitLab glpat-', (s) => `401 Unauthorized for ${s}`, `glpat-${draw(B64URL, 20)}`),
  shape('Google AIza', (s) => `API key not valid: ${s}`, `AIza${draw(B64URL, 35)}`),
  shape('Google ya29.', (s) => `invalid_token ya29.${s}`, draw(B64URL, 120)),
  shape('Stripe whsec_', (s) => `webhook signing secret whsec_${s} does not match`, draw(ALNUM, 32)),
  shape('AWS secret key (bare)', (s) => `credentials AKIA… / ${s} rejected`, draw(B64, 40)),
  shape('aws_secret_access_key=', (s) => `[default]\naws_secret_access_key=${s}\nregion=eu-west-1`, draw(B64, 40)),
  shape(
    'Azure AccountKey=',
    (s) => `DefaultEndpointsProtocol=https;AccountName=store1;AccountKey=${s};EndpointSuffix=core.windows.net`,
    `${draw(B64, 86)}==`,
  ),
  shape('PEM RSA private key', (s) => `bad key -----BEGIN RSA PRIVATE KEY-----\n${s}\n-----END RSA PRIVATE KEY-----`, rsaBody),
  shape('OpenSSH private key', (s) => `-----BEGIN OPENSSH PRIVATE KEY-----\n${s}\n-----END OPENSSH PRIVATE KEY-----`, opensshBody),
  shape('npm_ token', (s) => `npm ERR! 401 token ${s}`, `npm_${draw(ALNUM, 36)}`),
  shape('Twilio API key SK', (s) => `Twilio auth failed for ${s}`, `SK${draw(HEX, 32)}`),
  shape('SendGrid SG.', (s) => `sendgrid 401: ${s}`, `SG.${draw(B64URL, 22)}.${draw(B64URL, 43)}`),
  shape('Discord webhook', (s) => `POST https://discord.com/api/webhooks/${draw(DIGITS, 18)}/${s} failed`, draw(B64URL, 68)),
  shape('Hugging Face hf_', (s) => `401 for token ${s}`, `hf_${draw(LOWER + UPPER, 34)}`),
  shape('Shopify shpat_', (s) => `shopify: ${s} invalid`, `shpat_${draw(HEX, 32)}`),
  shape('Mailgun key-', (s) => `mailgun 401 with key-${s}`, draw(HEX, 32)),
  shape('Telegram bot token', (s) => `GET https://api.telegram.org/bot${s}/getMe 401`, `${draw(DIGITS, 10)}:AA${draw(B64URL, 33)}`),
  shape('DD_API_KEY=', (s) => `env DD_API_KEY=${s} rejected`, draw(HEX, 32)),
  shape(
    'GCP "private_key"',
    (s) => `{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n${s}\\n-----END PRIVATE KEY-----\\n"}`,
    gcpKeyBody.replaceAll('\n', '\\n'),
  ),
  shape('JSON "clientSecret"', (s) => `{"clientId":"app-1","clientSecret":"${s}"}`, draw(ALNUM, 30)),
  shape('JSON "accessToken"', (s) => `{"accessToken": "${s}", "expiresIn": 3600}`, draw(ALNUM + '._-', 36)),
  shape('card number (Visa)', (s) => `charge failed for card ${s}`, visa),
  shape('card number (Mastercard, spaced)', (s) => `card ${s} declined`, master.replace(/(\d{4})(?=\d)/g, '$1 ')),
  shape('card number (Amex)', (s) => `amex ${s} expired`, amex),
  shape('redis://:pw@host', (s) => `Redis connection to redis://:${s}@cache.internal:6379 failed`, draw(ALNUM, 20)),
  shape('password with @ in a URL', (s) => `mysql://root:${s}@db.internal/app refused`, `${draw(ALNUM, 8)}@${draw(ALNUM, 8)}`),
  shape('password with / in a URL', (s) => `amqp://guest:${s}@mq.internal:5672 refused`, `${draw(ALNUM, 8)}/${draw(ALNUM, 8)}`),
  shape('short Bearer token', (s) => `Authorization: Bearer ${s}`, `${draw(LOWER, 3)}123${draw(LOWER, 3)}456`),
  // More shapes from gitleaks' rules and common places
  shape('EC private key', (s) => `-----BEGIN EC PRIVATE KEY-----\n${s}\n-----END EC PRIVATE KEY-----`, ecBody),
  shape('Anthropic admin key', (s) => `admin key sk-ant-admin01-${s}`, `${draw(B64URL, 93)}AA`),
  shape('DigitalOcean dop_v1_', (s) => `doctl: ${s}`, `dop_v1_${draw(HEX, 64)}`),
  shape('Doppler dp.pt.', (s) => `doppler: ${s}`, `dp.pt.${draw(ALNUM, 43)}`),
  shape('PyPI upload token', (s) => `twine 403 ${s}`, `pypi-AgEIcHlwaS5vcmc${draw(B64URL, 70)}`),
  shape('Linear lin_api_', (s) => `linear: ${s}`, `lin_api_${draw(ALNUM, 40)}`),
  shape('Postman PMAK-', (s) => `postman: ${s}`, `PMAK-${draw(HEX, 24)}-${draw(HEX, 34)}`),
  shape('Databricks dapi', (s) => `databricks token ${s}`, `dapi${draw(HEX, 32)}`),
  shape('New Relic NRAK-', (s) => `newrelic ${s}`, `NRAK-${draw(UPPER + DIGITS, 27)}`),
  shape('x-api-key header', (s) => `x-api-key: ${s}`, draw(ALNUM, 32)),
  shape('escaped JSON password', (s) => `body "{\\"user\\":\\"ann\\",\\"password\\":\\"${s}\\"}"`, draw(ALNUM, 16)),
  shape('mongodb+srv credentials', (s) => `MongoServerError: mongodb+srv://app:${s}@cluster0.example.net/db`, draw(ALNUM, 20)),
  shape('Cookie header', (s) => `Cookie: sid=${s}; theme=dark`, draw(ALNUM, 32)),
];

import { randomFillSync } from 'node:crypto';

/**
 * Random ids for every request (request ids, anonymous distinct ids, event uuids, trace and span ids) from
 * one pool of random hex digits: one call into the CSPRNG and one hex conversion per 4 KiB of randomness,
 * then each id is cut from that text. `crypto.randomUUID()` builds its text from twenty pieces per call.
 */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolHex = '';
let poolAt = 0;

/** `digits` random hex digits (at most 64). */
function take(digits: number): string {
  if (poolAt + digits > poolHex.length) {
    randomFillSync(pool);
    poolHex = pool.toString('hex');
    poolAt = 0;
  }
  return poolHex.slice(poolAt, (poolAt += digits));
}

const ALL_ZEROS = { 8: '0'.repeat(16), 16: '0'.repeat(32) };

/** `bytes` random bytes as lowercase hex, never all zeros (W3C trace and span ids). */
export function randomHex(bytes: 8 | 16): string {
  for (let i = 0; i < 4; i++) {
    const hex = take(bytes * 2);
    if (hex !== ALL_ZEROS[bytes]) return hex;
  }
  return '1'.padStart(bytes * 2, '0');
}

/** The RFC 9562 variant digit (`10xx`) for a random hex digit. */
const VARIANT: Record<string, string> = {};
for (let n = 0; n < 16; n++) VARIANT[n.toString(16)] = (8 + (n & 3)).toString(16);

/** A random UUID v4 (RFC 9562), lowercase, as `crypto.randomUUID()` gives. */
export function randomUuid(): string {
  const hex = take(32);
  return (
    hex.slice(0, 8) +
    '-' +
    hex.slice(8, 12) +
    '-4' +
    hex.slice(13, 16) +
    '-' +
    VARIANT[hex[16]] +
    hex.slice(17, 20) +
    '-' +
    hex.slice(20, 32)
  );
}

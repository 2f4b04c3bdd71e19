import { randomFillSync } from 'node:crypto';

/**
 * Random ids for every request (request ids, anonymous distinct ids, event uuids, trace and span ids) from
 * pools of random text: one call into the CSPRNG and one conversion to text per pool, then each id is cut
 * from that text. `crypto.randomUUID()` builds its text from twenty pieces per call.
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
    // All zeros is invalid (one chance in 2^64 or less): compared only when the first digit is a zero.
    if (hex.charCodeAt(0) !== 0x30 || hex !== ALL_ZEROS[bytes]) return hex;
  }
  return '1'.padStart(bytes * 2, '0');
}

/** UUIDs made per refill of their pool (`randomUuid`). */
const UUIDS_PER_POOL = 128;
const UUID_LENGTH = 36;
const uuidBytes = Buffer.alloc(UUIDS_PER_POOL * 16);
const uuidText = Buffer.alloc(UUIDS_PER_POOL * UUID_LENGTH);
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const DASH = 0x2d;
let uuidPool = '';
let uuidAt = 0;

/**
 * Fills the pool of UUID texts: one CSPRNG call, then each UUID written byte by byte into one buffer and
 * read out as one string. A UUID is then one slice of it, where building its text from hex digits and
 * dashes took fifteen string operations (and its event's JSON then had those pieces to join again).
 */
function refillUuids(): void {
  randomFillSync(uuidBytes);
  let out = 0;
  for (let at = 0; at < uuidBytes.length; at += 16) {
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) uuidText[out++] = DASH;
      let byte = uuidBytes[at + i];
      if (i === 6)
        byte = (byte & 0x0f) | 0x40; // version 4
      else if (i === 8) byte = (byte & 0x3f) | 0x80; // the RFC 9562 variant, 10xx
      uuidText[out++] = HEX_DIGITS[byte >> 4];
      uuidText[out++] = HEX_DIGITS[byte & 0x0f];
    }
  }
  uuidPool = uuidText.toString('latin1');
  uuidAt = 0;
}

/** A random UUID v4 (RFC 9562), lowercase, as `crypto.randomUUID()` gives. */
export function randomUuid(): string {
  if (uuidAt === uuidPool.length) refillUuids();
  return uuidPool.slice(uuidAt, (uuidAt += UUID_LENGTH));
}

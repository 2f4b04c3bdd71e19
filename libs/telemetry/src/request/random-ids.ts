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
/** 18 random bytes per UUID: their 36 hex digits are its text, of which six are then set (dashes, version, variant). */
const uuidBytes = Buffer.alloc(UUIDS_PER_POOL * 18);
const uuidText = Buffer.alloc(UUIDS_PER_POOL * UUID_LENGTH);
/** The RFC 9562 variant digit (`10xx`), by two random bits. */
const VARIANT_DIGITS = [0x38, 0x39, 0x61, 0x62];
const DASH = 0x2d;
let uuidPool = '';
let uuidAt = 0;

/**
 * Fills the pool of UUID texts: one CSPRNG call and one conversion to hex, natively, then six bytes set
 * per UUID, and the whole read out as one string. A UUID is then one slice of it. (Writing each UUID's
 * 36 digits from its bytes in a JavaScript loop cost several times more.) The digit at 18 becomes a
 * dash: its four random bits, unused anywhere else, give the variant digit's two free bits, so each UUID
 * keeps 122 random bits, as version 4 has.
 */
function refillUuids(): void {
  randomFillSync(uuidBytes);
  uuidText.write(uuidBytes.toString('hex'), 0, 'latin1');
  for (let at = 0, byte9 = 9; at < uuidText.length; at += UUID_LENGTH, byte9 += 18) {
    uuidText[at + 8] = DASH;
    uuidText[at + 13] = DASH;
    uuidText[at + 14] = 0x34; // version 4
    uuidText[at + 18] = DASH;
    uuidText[at + 19] = VARIANT_DIGITS[(uuidBytes[byte9] >> 4) & 3];
    uuidText[at + 23] = DASH;
  }
  uuidPool = uuidText.toString('latin1');
  uuidAt = 0;
}

/** A random UUID v4 (RFC 9562), lowercase, as `crypto.randomUUID()` gives. */
export function randomUuid(): string {
  if (uuidAt === uuidPool.length) refillUuids();
  return uuidPool.slice(uuidAt, (uuidAt += UUID_LENGTH));
}

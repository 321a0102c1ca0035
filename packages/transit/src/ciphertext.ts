/**
 * Transit ciphertexts: `vault:v<N>:<base64 body>`, the shape Vault clients store and pass back.
 *
 * Body (format 1):
 *   1 byte   format (1)
 *   2 bytes  length L of the data-key envelope (big-endian)
 *   L bytes  the data-key envelope: a kekbroker envelope whose payload is the 32-byte data key, multi-wrapped
 *            by the keyring's providers and bound to the tenant (Keyring.wrap). It is what lets the ciphertext
 *            open after every cache is gone.
 *   12 bytes AES-GCM nonce (random)
 *   rest     AES-256-GCM ciphertext || 16-byte tag, under HKDF(data key, transit key name, context)
 *
 * The AAD binds the transit key name, the version N, the tenant and the caller's associated_data, so editing
 * the `v<N>` prefix (to dodge min_decryption_version) or replaying under another key or tenant fails to open.
 */
import { createCipheriv, createDecipheriv, createHmac, randomFillSync } from 'node:crypto';
import { zeroize } from '@kekbroker/core';

export const FORMAT = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const PREFIX = 'vault:v';
/** Vault's own messages, so clients and runbooks that match on them keep working. */
export const CT_ERRORS = {
  noPrefix: 'invalid ciphertext: no prefix',
  fields: 'invalid ciphertext: wrong number of fields',
  version: 'invalid ciphertext: version number could not be decoded',
  base64: 'invalid ciphertext: could not decode base64',
  format: 'invalid ciphertext: unknown or truncated kekbroker transit format',
} as const;

export class CiphertextError extends Error {}

export interface ParsedCiphertext {
  version: number;
  envelope: Buffer;
  nonce: Buffer;
  sealed: Buffer;
}

export interface Binding {
  keyName: string;
  version: number;
  tenant: string;
  /** Derivation context (derived keys); empty when the key is not derived. */
  context: Buffer;
  associatedData: Buffer;
}

const B64_VALUE = new Int8Array(128).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries()) B64_VALUE[c.charCodeAt(0)] = i;

/**
 * Strict, canonical standard base64; undefined when it is not. Node's decoder skips junk silently and also
 * takes the URL-safe alphabet, so: any skipped character shows as a decoded length short of what the string's
 * length and padding promise; '-' and '_' are looked for (native scans); and the unused low bits of the last
 * character before the padding must be zero (so one byte string has one encoding). The same verdict as
 * re-encoding and comparing (a test checks it on random strings), for a third of its cost on 1 KiB.
 */
export function decodeBase64(s: string): Buffer | undefined {
  const n = s.length;
  if (n % 4 !== 0) return undefined;
  const pad = n > 0 && s.charCodeAt(n - 1) === 61 ? (s.charCodeAt(n - 2) === 61 ? 2 : 1) : 0;
  const b = Buffer.from(s, 'base64');
  let ok = b.length === (n / 4) * 3 - pad && !s.includes('-') && !s.includes('_');
  if (ok && pad > 0) {
    const last = B64_VALUE[s.charCodeAt(n - pad - 1)] ?? -1;
    ok = last >= 0 && (last & (pad === 1 ? 0b11 : 0b1111)) === 0;
  }
  if (!ok) {
    b.fill(0);
    return undefined;
  }
  return b;
}

export function parseCiphertext(text: string): ParsedCiphertext {
  if (!text.startsWith('vault:')) throw new CiphertextError(CT_ERRORS.noPrefix);
  const parts = text.split(':');
  if (parts.length !== 3) throw new CiphertextError(CT_ERRORS.fields);
  const v = (parts[1] as string).slice(1);
  if (!(parts[1] as string).startsWith('v') || !/^[0-9]{1,10}$/.test(v)) throw new CiphertextError(CT_ERRORS.version);
  // Vault reads v0 as v1 (legacy ciphertexts).
  const version = Math.max(1, Number(v));
  const body = decodeBase64(parts[2] as string);
  if (!body) throw new CiphertextError(CT_ERRORS.base64);
  if (body.length < 3 || body[0] !== FORMAT) throw new CiphertextError(CT_ERRORS.format);
  const len = body.readUInt16BE(1);
  const envEnd = 3 + len;
  if (body.length < envEnd + NONCE_BYTES + TAG_BYTES) throw new CiphertextError(CT_ERRORS.format);
  return {
    version,
    envelope: body.subarray(3, envEnd),
    nonce: body.subarray(envEnd, envEnd + NONCE_BYTES),
    sealed: body.subarray(envEnd + NONCE_BYTES),
  };
}

function aad(b: Binding): Buffer {
  const head = Buffer.from(`kekbroker-transit\0f=${FORMAT}\0key=${b.keyName}\0v=${b.version}\0tenant=${b.tenant}\0`, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.context.length);
  return Buffer.concat([head, len, b.context, b.associatedData]);
}

const ZERO_SALT = Buffer.alloc(32);
const ONE = Buffer.from([1]);

/**
 * The per-message key: HKDF-SHA256 (RFC 5869, empty salt, one output block) of the data key, domain-separated
 * by transit key name and context. Written as its two HMACs: crypto.hkdfSync builds KeyObjects per call and
 * cost ~10x more, which showed as the top of the encrypt profile.
 */
export function messageKey(dataKey: Uint8Array, b: Pick<Binding, 'keyName' | 'context'>): Buffer {
  const prk = createHmac('sha256', ZERO_SALT).update(dataKey).digest();
  try {
    return createHmac('sha256', prk).update(`kekbroker-transit-key\0${b.keyName}\0`, 'utf8').update(b.context).update(ONE).digest();
  } finally {
    zeroize(prk);
  }
}

/** Random nonces drawn from a pooled CSPRNG buffer: one randomFillSync per 1024 messages, not per message. */
const NONCE_POOL = Buffer.alloc(NONCE_BYTES * 1024);
let noncePos = NONCE_POOL.length;
function nextNonce(): Buffer {
  if (noncePos === NONCE_POOL.length) {
    randomFillSync(NONCE_POOL);
    noncePos = 0;
  }
  const n = Buffer.from(NONCE_POOL.subarray(noncePos, noncePos + NONCE_BYTES));
  noncePos += NONCE_BYTES;
  return n;
}

/**
 * Seal `plaintext` under a message key from `messageKey` (both lent; read synchronously). Callers that seal
 * many messages under one data key and context reuse the message key (see DataKeyCache).
 */
export function seal(msgKey: Uint8Array, envelope: Uint8Array, plaintext: Uint8Array, b: Binding): string {
  if (envelope.length > 0xffff) throw new Error('data-key envelope too large for the transit format');
  const nonce = nextNonce();
  const c = createCipheriv('aes-256-gcm', msgKey, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad(b));
  const head = Buffer.alloc(3);
  head[0] = FORMAT;
  head.writeUInt16BE(envelope.length, 1);
  const body = Buffer.concat([head, envelope, nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
  return `${PREFIX}${b.version}:${body.toString('base64')}`;
}

/** Open a parsed ciphertext with its message key (lent); the caller owns (and zeroes) the plaintext. */
export function open(msgKey: Uint8Array, ct: ParsedCiphertext, b: Binding): Buffer {
  const d = createDecipheriv('aes-256-gcm', msgKey, ct.nonce, { authTagLength: TAG_BYTES });
  d.setAAD(aad(b));
  d.setAuthTag(ct.sealed.subarray(ct.sealed.length - TAG_BYTES));
  const out = d.update(ct.sealed.subarray(0, ct.sealed.length - TAG_BYTES));
  try {
    d.final();
  } catch {
    zeroize(out);
    throw new CiphertextError('cipher: message authentication failed');
  }
  return out;
}

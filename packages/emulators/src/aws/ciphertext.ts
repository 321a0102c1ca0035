/**
 * The emulator's ciphertext blob. Real KMS blobs are opaque and undocumented; what callers may rely on is
 * that the blob names its key and key material in a cleartext header (so Decrypt needs no KeyId for
 * symmetric keys) and that the EncryptionContext is AAD, not stored. We keep exactly those properties:
 *
 *   0x01 | keyIdLen u8 | keyId (utf8) | material u16be | iv (12) | ciphertext | tag (16)
 *
 * The header is authenticated together with the canonical EncryptionContext, so flipping any byte of the
 * blob, or presenting another context, fails as InvalidCiphertextException. 32-byte key → 100 bytes.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KmsError } from './errors';

const FORMAT = 0x01;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface BlobHeader {
  /** Key id (a UUID), not the ARN: the ARN is derived from region and account. */
  readonly keyId: string;
  /** Index of the key material inside the key (0 = the material the key was created with). */
  readonly material: number;
}

interface ParsedBlob extends BlobHeader {
  readonly headerBytes: Buffer;
  readonly iv: Buffer;
  readonly body: Buffer;
  readonly tag: Buffer;
}

/**
 * "Exact, case-sensitive match … only the order of the pairs can vary": sort by key (byte order) and
 * serialise as JSON pairs, which cannot be confused whatever the keys and values contain. An absent
 * context and an empty one are the same context, as in KMS.
 */
export function canonicalContext(ctx: Readonly<Record<string, string>> | undefined): Buffer {
  const pairs = Object.entries(ctx ?? {}).sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return Buffer.from(JSON.stringify(pairs), 'utf8');
}

function headerBytes(h: BlobHeader): Buffer {
  const id = Buffer.from(h.keyId, 'utf8');
  if (id.length > 255) throw new Error('key id too long for a blob header');
  const out = Buffer.alloc(1 + 1 + id.length + 2);
  out[0] = FORMAT;
  out[1] = id.length;
  id.copy(out, 2);
  out.writeUInt16BE(h.material, 2 + id.length);
  return out;
}

export function seal(key: Buffer, h: BlobHeader, plaintext: Buffer, ctx: Readonly<Record<string, string>> | undefined): Buffer {
  const head = headerBytes(h);
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.concat([head, canonicalContext(ctx)]));
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([head, iv, body, c.getAuthTag()]);
}

const invalid = (): KmsError => new KmsError('InvalidCiphertextException', 'The ciphertext is invalid or was not produced by KMS.');

/** Read the cleartext header; anything that does not parse is InvalidCiphertextException, as in KMS. */
export function parseBlob(blob: Buffer): ParsedBlob {
  if (blob.length < 2 || blob[0] !== FORMAT) throw invalid();
  const idLen = blob[1] ?? 0;
  const headLen = 2 + idLen + 2;
  if (idLen === 0 || blob.length < headLen + IV_BYTES + TAG_BYTES + 1) throw invalid();
  return {
    keyId: blob.subarray(2, 2 + idLen).toString('utf8'),
    material: blob.readUInt16BE(2 + idLen),
    headerBytes: blob.subarray(0, headLen),
    iv: blob.subarray(headLen, headLen + IV_BYTES),
    body: blob.subarray(headLen + IV_BYTES, blob.length - TAG_BYTES),
    tag: blob.subarray(blob.length - TAG_BYTES),
  };
}

export function open(key: Buffer, p: ParsedBlob, ctx: Readonly<Record<string, string>> | undefined): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, p.iv);
  d.setAAD(Buffer.concat([p.headerBytes, canonicalContext(ctx)]));
  d.setAuthTag(p.tag);
  try {
    return Buffer.concat([d.update(p.body), d.final()]);
  } catch {
    // Wrong EncryptionContext and tampered bytes look the same to GCM, and KMS reports both this way.
    throw invalid();
  }
}

/** The `corrupt` fault: a copy with a few bits flipped in the middle (header, iv or body alike). */
export function flipBytes(b: Uint8Array): Buffer {
  const out = Buffer.from(b);
  if (out.length === 0) return out;
  const mid = out.length >> 1;
  out[mid] = (out[mid] ?? 0) ^ 0x5a;
  return out;
}

/**
 * End-to-end integrity for Encrypt/Decrypt. The SDK checks nothing (research §2.4), so we do what the
 * service.proto comments ask: send CRC32C of every input, require the server to confirm it verified them
 * (`verified_*`), and check the CRC32C of every output. "If [a check fails], discard the response and
 * perform a limited number of retries" — so a failed check is an IntegrityError, which retry.ts retries
 * and classify-error.ts turns into `unavailable` when retries run out.
 */
import { KekError, zeroize } from '@kekbroker/core';
import type { DecryptResponse, EncryptResponse, Int64Value } from './client';
import { crc32c } from '@aws-crypto/crc32c';
import { IntegrityError } from './transport-errors';
import { parseVersionName } from './version-ref';

function crcMatches(data: Uint8Array, field: Int64Value | null | undefined): boolean {
  const v = field?.value;
  if (v === undefined || v === null) return false;
  return Number(String(v)) === crc32c(data);
}

/** The CRCs we send with a request: `{ value: crc }` Int64Values. */
export function crcOf(data: Uint8Array): { value: number } {
  return { value: crc32c(data) };
}

/**
 * Accept an Encrypt answer only if the server verified our plaintext and AAD checksums, the ciphertext
 * matches its checksum, and the version used belongs to our key. Returns the version name and ciphertext.
 */
export function checkEncrypt(res: EncryptResponse, keyName: string, provider: string): { versionName: string; ciphertext: Buffer } {
  if (res.verifiedPlaintextCrc32c !== true || res.verifiedAdditionalAuthenticatedDataCrc32c !== true) {
    throw new IntegrityError('Encrypt response did not confirm the plaintext/AAD checksums');
  }
  const ciphertext = res.ciphertext ? Buffer.from(res.ciphertext) : Buffer.alloc(0);
  if (ciphertext.length === 0 || !crcMatches(ciphertext, res.ciphertextCrc32c)) {
    throw new IntegrityError('Encrypt response ciphertext does not match its ciphertext_crc32c');
  }
  const version = parseVersionName(res.name ?? '');
  if (!version || version.keyName !== keyName) {
    // Not damage in transit: a KMS (or something pretending to be one) answered for another key.
    throw new KekError('internal', `GCP KMS answered Encrypt for ${keyName} with version "${res.name ?? ''}", which is not a version of that key`, { provider });
  }
  return { versionName: version.versionName, ciphertext };
}

/** Accept a Decrypt answer only if the plaintext matches its checksum; a rejected plaintext is zeroed. */
export function checkDecrypt(res: DecryptResponse): Buffer {
  const plaintext = res.plaintext ? Buffer.from(res.plaintext.buffer, res.plaintext.byteOffset, res.plaintext.byteLength) : Buffer.alloc(0);
  if (plaintext.length === 0 || !crcMatches(plaintext, res.plaintextCrc32c)) {
    zeroize(plaintext);
    throw new IntegrityError('Decrypt response plaintext does not match its plaintext_crc32c');
  }
  return plaintext;
}

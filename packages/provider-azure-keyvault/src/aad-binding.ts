/**
 * Key Vault's wrapKey has no associated data (neither RSA-OAEP-256 nor A256KW takes any), so the binding to
 * tenant, keyring and envelope version (principle 3) travels inside the wrapped bytes: we wrap
 * `plaintext || SHA-256(aadBytes(ctx))` and, after unwrap, compare the trailing 32 bytes with the digest of
 * the context the caller claims. A blob replayed under another tenant or keyring unwraps fine at the vault
 * and is then refused here as `corrupt`. The digest is not secret; what makes it binding is that only the
 * vault can produce a wrap, so nobody can swap the trailing bytes without the key.
 */
import { KekError, aadDigest, constantTimeEqual, zeroize, type WrapContext } from '@kekbroker/core';

export const DIGEST_BYTES = 32;

/** The bytes to send to wrapKey. The caller zeroes the result after the call. */
export function bindContext(plaintext: Uint8Array, ctx: WrapContext): Buffer {
  return Buffer.concat([plaintext, aadDigest(ctx)]);
}

/**
 * Check the binding and return a fresh copy of the plaintext. `inner` (what unwrapKey returned) is zeroed
 * here, whatever the outcome.
 */
export function unbindContext(inner: Uint8Array, ctx: WrapContext, provider: string): Buffer {
  const bytes = Buffer.from(inner.buffer, inner.byteOffset, inner.byteLength);
  try {
    if (bytes.length <= DIGEST_BYTES) {
      throw new KekError('corrupt', 'Azure Key Vault unwrapped a key too short to carry its tenant/keyring binding', { provider });
    }
    const split = bytes.length - DIGEST_BYTES;
    if (!constantTimeEqual(bytes.subarray(split), aadDigest(ctx))) {
      throw new KekError('corrupt', 'Azure Key Vault unwrap succeeded but the key is bound to another tenant, keyring or envelope version', { provider });
    }
    return Buffer.from(bytes.subarray(0, split));
  } finally {
    zeroize(bytes);
  }
}

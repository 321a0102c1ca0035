/**
 * Golden vectors: fixed envelopes whose bytes are committed in test/vectors/envelope-v1.json. They pin the
 * v1 format, the AAD construction and the key_id derivation: if any of those changes, decoding or opening a
 * vector fails, and old etcd data would become unreadable. Never regenerate them for v1.
 *
 * The vectors use a fixed envelope key K (not provider-wrapped: the "wrapped" field holds opaque test
 * bytes), so a test can open the payload without a KMS.
 */
export interface EnvelopeVector {
  name: string;
  tenant: string;
  keyring: string;
  refs: Array<{ providerId: string; keyVersionRef: string; wrappedHex: string }>;
  keyHex: string;
  plaintextHex: string;
  envelopeHex: string;
  keyId: string;
}

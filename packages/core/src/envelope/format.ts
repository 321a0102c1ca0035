/**
 * Envelope format v1 (binary, big-endian). Everything before `nonce` is the header; the header is part of
 * the payload's AES-GCM AAD, so any change to it (keyring, generation, a wrap added, removed or swapped)
 * makes the envelope fail authentication as `corrupt`.
 *
 *   offset  size  field
 *   0       2     magic "KB" (0x4b 0x42)
 *   2       1     format version (1)
 *   3       1     flags (0; any other value is refused as unsupported)
 *   4       1     keyring name length n (1..63), then n bytes of ASCII
 *           8     generation: first 8 bytes of SHA-256 over the keyring's provider version refs
 *           1     wrap count w (1..8); then w times:
 *                   1 + a   provider id (length, ASCII, 1..63)
 *                   2 + r   provider key version ref (length, UTF-8, 1..1024)
 *                   2 + b   wrapped key bytes (length, 1..4096)
 *           12    payload nonce
 *           4 + s payload ciphertext with its 16-byte GCM tag (length, 16..MAX_PAYLOAD+16)
 *   The envelope ends exactly there; trailing bytes are refused.
 */
export const MAGIC = Buffer.from('KB', 'ascii');
export const ENVELOPE_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [1];

export const GENERATION_BYTES = 8;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const KEY_BYTES = 32;
export const MAX_WRAPS = 8;
export const MAX_NAME_BYTES = 63;
export const MAX_REF_BYTES = 1024;
export const MAX_WRAPPED_BYTES = 4096;
/** Largest payload an envelope carries: a 1 MiB transit plaintext. A KMS v2 seed is 32 bytes. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;
export const MAX_ENVELOPE_BYTES =
  4 + 1 + MAX_NAME_BYTES + GENERATION_BYTES + 1 + MAX_WRAPS * (1 + MAX_NAME_BYTES + 2 + MAX_REF_BYTES + 2 + MAX_WRAPPED_BYTES) + NONCE_BYTES + 4 + MAX_PAYLOAD_BYTES + TAG_BYTES;

export interface EnvelopeWrap {
  readonly providerId: string;
  readonly keyVersionRef: string;
  readonly wrapped: Uint8Array;
}

export interface Envelope {
  readonly version: number;
  readonly keyring: string;
  readonly generation: Uint8Array;
  readonly wraps: readonly EnvelopeWrap[];
  readonly nonce: Uint8Array;
  readonly sealed: Uint8Array;
}

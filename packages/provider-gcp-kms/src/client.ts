/**
 * The slice of Cloud KMS the provider uses, as a structural interface: provider.ts is written against this,
 * sdk-client.ts binds it to `@google-cloud/kms`, and tests may pass a plain object. Field names and shapes
 * follow what the SDK returns (proto3 lowerCamel; int64 as string or Long; enums as names).
 */

/** google.protobuf.Int64Value as the SDK gives it back: `{ value: '3838691454' }` (a string, or a Long). */
export interface Int64Value {
  value?: string | number | { toString(): string } | null;
}

export interface Timestamp {
  seconds?: string | number | { toString(): string } | null;
  nanos?: number | null;
}

export interface KmsCryptoKeyVersion {
  name?: string | null;
  /** "ENABLED", "DISABLED", "PENDING_GENERATION", "DESTROY_SCHEDULED", "DESTROYED", … (or the enum number). */
  state?: string | number | null;
  protectionLevel?: string | number | null;
  createTime?: Timestamp | null;
}

export interface KmsCryptoKey {
  name?: string | null;
  primary?: KmsCryptoKeyVersion | null;
  purpose?: string | number | null;
  createTime?: Timestamp | null;
}

export interface EncryptRequest {
  name: string;
  plaintext: Buffer;
  additionalAuthenticatedData: Buffer;
  plaintextCrc32c: { value: number };
  additionalAuthenticatedDataCrc32c: { value: number };
}

export interface EncryptResponse {
  name?: string | null;
  ciphertext?: Uint8Array | null;
  ciphertextCrc32c?: Int64Value | null;
  verifiedPlaintextCrc32c?: boolean | null;
  verifiedAdditionalAuthenticatedDataCrc32c?: boolean | null;
}

export interface DecryptRequest {
  /** The CryptoKey (never a version: the version is inside the ciphertext). */
  name: string;
  ciphertext: Buffer;
  additionalAuthenticatedData: Buffer;
  ciphertextCrc32c: { value: number };
  additionalAuthenticatedDataCrc32c: { value: number };
}

export interface DecryptResponse {
  plaintext?: Uint8Array | null;
  plaintextCrc32c?: Int64Value | null;
  /** False when an older version decrypted: a hint that the blob could be rewrapped. */
  usedPrimary?: boolean | null;
}

/** Per-attempt settings: the caller's signal, and a timeout for this one RPC (no SDK-level retries). */
export interface CallSettings {
  signal: AbortSignal;
  timeoutMs: number;
}

export interface GcpKmsClient {
  encrypt(req: EncryptRequest, call: CallSettings): Promise<EncryptResponse>;
  decrypt(req: DecryptRequest, call: CallSettings): Promise<DecryptResponse>;
  getCryptoKey(req: { name: string }, call: CallSettings): Promise<KmsCryptoKey>;
  getCryptoKeyVersion(req: { name: string }, call: CallSettings): Promise<KmsCryptoKeyVersion>;
  createCryptoKeyVersion(req: { parent: string }, call: CallSettings): Promise<KmsCryptoKeyVersion>;
  updateCryptoKeyPrimaryVersion(req: { name: string; cryptoKeyVersionId: string }, call: CallSettings): Promise<KmsCryptoKey>;
  close(): Promise<void>;
}

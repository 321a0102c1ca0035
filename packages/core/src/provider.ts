/**
 * The contract every KEK backend implements: the local software key, AWS KMS, Google Cloud KMS, Azure Key
 * Vault, and later PKCS#11 and Vault transit. A keyring composes several providers; providers know
 * nothing of keyrings, caches or tenants beyond the bytes of the wrap context.
 */
import type { WrapContext } from './wrap-context';

/** A wrapped key as stored in an envelope: which provider key version wrapped it, and the opaque bytes. */
export interface WrappedKey {
  /**
   * The exact provider key version that produced `wrapped` (an AWS key ARN + key material id, a GCP
   * CryptoKeyVersion name, an Azure key id with its version, a local keystore id + version). Public;
   * it goes into the envelope and into key_id derivation. At most 1024 bytes of UTF-8.
   */
  readonly keyVersionRef: string;
  readonly wrapped: Uint8Array;
}

export interface ProviderDescription {
  /** Provider id from config, e.g. "aws-prod". */
  readonly id: string;
  /** Provider type, e.g. "local", "aws-kms", "gcp-kms", "azure-keyvault". */
  readonly type: string;
  /** Version ref that `wrap` uses now. Changes on rotation, and only then. */
  readonly currentVersionRef: string;
  /** Public, human-readable facts for status pages (region, vault URL, key name). Never secrets. */
  readonly details: Readonly<Record<string, string>>;
}

/** True if one more attempt of a failed provider call may be made now (see KekProvider.setRetryGate). */
export type RetryGate = () => boolean;

export interface KekProvider {
  readonly id: string;
  readonly type: string;
  /**
   * Wrap a key (a 32-byte envelope key in practice; at most 4096 bytes) under the current key version,
   * bound to `ctx` so that an unwrap with any other context fails as `corrupt`.
   */
  wrap(plaintext: Uint8Array, ctx: WrapContext, signal: AbortSignal): Promise<WrappedKey>;
  /** Unwrap bytes produced by `wrap` (any version not destroyed). The caller zeroes the result. */
  unwrap(wrapped: WrappedKey, ctx: WrapContext, signal: AbortSignal): Promise<Buffer>;
  /** Create a new primary key version; old versions keep unwrapping. Returns the new description. */
  rotate(signal: AbortSignal): Promise<ProviderDescription>;
  /** The current version ref and public details. May be cached by the provider; must be cheap. */
  describe(signal: AbortSignal): Promise<ProviderDescription>;
  /** Prove the provider can serve (e.g. a wrap/unwrap of a canary, or a key read). Throws KekError. */
  probe(signal: AbortSignal): Promise<void>;
  /** Release clients, sockets and timers. */
  close(): Promise<void>;
  /**
   * Route the provider's retries (its SDK's and its own) through the broker's retry budget: before each retry
   * of a call the provider asks `gate()` and, on false, fails with the attempt's own error instead. Providers
   * never retry throttling inside a call. Absent gate: retries bounded only by the provider's maxAttempts.
   */
  setRetryGate?(gate: RetryGate): void;
  /** Something the operator must see when the broker starts (e.g. "created a new keystore"): logged at warn. */
  readonly startupNotice?: string;
}

/** Largest key a provider is asked to wrap. AWS KMS Encrypt takes 4 KiB of plaintext. */
export const MAX_WRAP_PLAINTEXT = 4096;
/** Largest key version ref we accept from a provider or in an envelope. */
export const MAX_VERSION_REF_BYTES = 1024;

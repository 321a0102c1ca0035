/**
 * The slice of the Azure Key Vault SDK the provider uses, as plain structural types. `sdk-client.ts`
 * adapts the real `KeyClient`/`CryptographyClient` to it; unit tests pass plain objects. Nothing here
 * imports the SDK.
 */
import type { RetryGate } from '@kekbroker/core';

/**
 * Where sdk-client's throttle policy leaves the server's Retry-After (in ms) once it has taken it away from
 * the SDK's retry policy; classify-error reads it back into KekError.retryAfterMs.
 */
export const RETRY_AFTER_MS_HEADER = 'x-kekbroker-retry-after-ms';

/** The two algorithms that make Key Vault do every wrap itself (see provider.ts for why). */
export type WrapAlgorithm = 'RSA-OAEP-256' | 'A256KW';

/** One key version as Key Vault describes it (public facts only: Key Vault never returns private parts). */
export interface VaultKey {
  /** The key id (kid): `https://<vault host>/keys/<name>/<version>`. */
  readonly id: string;
  readonly name: string;
  /** 32 hex characters in real vaults. */
  readonly version: string;
  /** JWK kty: RSA, RSA-HSM, oct, oct-HSM, EC, EC-HSM. */
  readonly keyType: string;
  readonly enabled: boolean;
  /** key_ops as the vault lists them; undefined when the vault did not say. */
  readonly keyOps?: readonly string[];
  readonly notBefore?: Date;
  readonly expiresOn?: Date;
  /** RSA modulus length in bytes (256 for RSA-2048), when the key is RSA. */
  readonly modulusBytes?: number;
}

export interface CallOptions {
  abortSignal: AbortSignal;
}

/** A crypto client pinned to exactly one key version. */
export interface KeyVersionCrypto {
  wrapKey(algorithm: WrapAlgorithm, key: Uint8Array, options: CallOptions): Promise<{ result: Uint8Array; keyId?: string }>;
  unwrapKey(algorithm: WrapAlgorithm, wrapped: Uint8Array, options: CallOptions): Promise<{ result: Uint8Array }>;
}

export interface KeyVaultClient {
  /** The latest version when `version` is undefined. */
  getKey(name: string, version: string | undefined, options: CallOptions): Promise<VaultKey>;
  /** POST /keys/{name}/rotate: a new version with the same type, size and operations. */
  rotateKey(name: string, options: CallOptions): Promise<VaultKey>;
  /** A crypto client bound to this version; cheap to call, but each client does its own auth challenge. */
  cryptoFor(key: VaultKey): KeyVersionCrypto;
  /** Route the SDK's retries through the broker's retry budget (sdk-client.ts retryGatePolicy). */
  setRetryGate?(gate: RetryGate): void;
}

/** Duck-typed Azure TokenCredential: what tests pass instead of a real Entra ID credential. */
export interface TokenCredentialLike {
  getToken(scopes: string | string[], options?: unknown): Promise<{ token: string; expiresOnTimestamp: number } | null>;
}

/**
 * How the broker gets an Entra ID token for the vault. Secrets are referenced (env var or file), never inline.
 * - `default`: DefaultAzureCredential (env, workload identity, managed identity, ...). Convenient, but it
 *   probes several sources in turn; prefer an explicit type in production.
 * - `workload-identity`: AKS workload identity (federated token file; env vars set by the webhook).
 * - `managed-identity`: VM / VMSS / node identity through IMDS.
 * - `client-secret`: an app registration's secret, read from `clientSecretEnv` or `clientSecretFile`.
 * - `emulator`: a fixed fake token for the kekbroker Key Vault emulator; refused unless the vault URL is a
 *   loopback address (so it cannot be pointed at a real vault by mistake).
 */
export type CredentialSpec =
  | { type: 'default'; managedIdentityClientId?: string; tenantId?: string }
  | { type: 'workload-identity'; tenantId?: string; clientId?: string; tokenFilePath?: string }
  | { type: 'managed-identity'; clientId?: string; resourceId?: string }
  | { type: 'emulator' }
  | {
      type: 'client-secret';
      tenantId: string;
      clientId: string;
      clientSecretEnv?: string;
      clientSecretFile?: string;
      /** Entra ID authority for sovereign clouds, e.g. https://login.microsoftonline.us. */
      authorityHost?: string;
      /** Skip MSAL's instance discovery (needed for private authorities such as a test IdP). */
      disableInstanceDiscovery?: boolean;
    };

/**
 * The only file that imports the Azure SDK: it builds KeyClient / CryptographyClient and the Entra ID
 * credential, and adapts them to the structural interface in client.ts.
 */
import {
  CryptographyClient, KeyClient,
  type CryptographyClientOptions, type KeyClientOptions, type KeyVaultKey,
} from '@azure/keyvault-keys';
import {
  ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential, WorkloadIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import type { RetryGate } from '@kekbroker/core';
import { RETRY_AFTER_MS_HEADER, type CallOptions, type CredentialSpec, type KeyVaultClient, type KeyVersionCrypto, type TokenCredentialLike, type VaultKey } from './client';


export interface RetrySettings {
  /** Retries after the first attempt, for 408/5xx and connection errors (never for 429). */
  maxRetries: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
}

/**
 * Sized for the apiserver's 3 s budget (the broker gives a provider ~2 s): three attempts with 100 ms and
 * ~200 ms pauses fit, the SDK default (3 retries from 1 s, up to 64 s) does not.
 */
export const DEFAULT_RETRY: RetrySettings = { maxRetries: 2, retryDelayMs: 100, maxRetryDelayMs: 500 };

export interface SdkClientOptions {
  vaultUrl: string;
  credential: TokenCredentialLike;
  /** PEM CA(s) to trust instead of the system roots (emulators, private CAs). */
  caPem?: string | Buffer;
  /** Only for emulators: the challenge names vault.azure.net while the URL is 127.0.0.1. */
  disableChallengeResourceVerification?: boolean;
  retry?: RetrySettings;
}

/** The broker's retry gate, set after construction (KekProvider.setRetryGate); absent = maxRetries alone. */
export interface RetryHolder {
  gate?: RetryGate;
}

/**
 * The error a refused retry ends the call with: the previous attempt's status, code and message (so
 * classify-error reads it as that attempt's failure), under a name that is not RestError, which the SDK's
 * retry policy rethrows at once instead of retrying.
 */
class RetryRefused extends Error {
  override readonly name = 'RetryRefusedByBudget';
  readonly statusCode: number | undefined;
  readonly code: string | undefined;
  readonly response: unknown;
  constructor(prev: { response?: { status: number }; error?: unknown }) {
    const e = (prev.error ?? {}) as { message?: string; statusCode?: number; code?: string; response?: unknown };
    super(e.message ?? `HTTP ${prev.response?.status ?? 'error'} (retry refused: the provider's retry budget is spent)`);
    this.statusCode = e.statusCode ?? prev.response?.status;
    this.code = e.code;
    this.response = e.response ?? prev.response;
  }
}

/**
 * Runs per attempt (position perRetry, inside the SDK's retry policy): before every attempt but the first of
 * a request it asks the broker's retry gate; on a refusal no request is sent and the call ends with the
 * previous attempt's failure. The SDK still decides *whether* to retry (408/5xx/connection errors; 429 never,
 * see surfaceThrottlingPolicy); the gate decides whether the budget allows it.
 */
export function retryGatePolicy(holder: RetryHolder): Policy {
  const last = new WeakMap<object, { response?: { status: number }; error?: unknown }>();
  return {
    name: 'kekbrokerRetryGate',
    async sendRequest(request, next) {
      const prev = last.get(request);
      // Only a re-send after a failure is a retry (the auth challenge re-sends after a 401: not one).
      const failed = prev !== undefined && (prev.error !== undefined || (prev.response !== undefined && (prev.response.status === 408 || prev.response.status >= 500)));
      if (failed && holder.gate && !holder.gate()) throw new RetryRefused(prev);
      try {
        const response = await next(request);
        last.set(request, { response });
        return response;
      } catch (error) {
        last.set(request, { error });
        throw error;
      }
    },
  };
}

type Policy = NonNullable<KeyClientOptions['additionalPolicies']>[number]['policy'];
const RETRY_AFTER_HEADERS = ['retry-after-ms', 'x-ms-retry-after-ms', 'retry-after'];

/**
 * Key Vault answers throttling with 429 + Retry-After (seconds). The SDK's throttling strategy would sit
 * out that wait inside our deadline, maxRetries times, and the caller would see a timeout instead of
 * "throttled". We want the opposite: fail fast with the server's hint, so the keyring can use another
 * provider or the cache, and the broker can tell its caller when to come back. This per-attempt policy
 * moves the hint into our own header, which no retry strategy reads; 503 loses its hint too, so that it
 * is retried with our bounded backoff rather than the server's (possibly long) wait.
 */
export const surfaceThrottlingPolicy: Policy = {
  name: 'kekbrokerSurfaceThrottling',
  async sendRequest(request, next) {
    const response = await next(request);
    if (response.status !== 429 && response.status !== 503) return response;
    const ms = retryAfterMs((h) => response.headers.get(h));
    for (const h of RETRY_AFTER_HEADERS) response.headers.delete(h);
    if (ms !== undefined) response.headers.set(RETRY_AFTER_MS_HEADER, String(ms));
    return response;
  },
};

/** Parse the three headers Azure uses for "come back later", in milliseconds. */
export function retryAfterMs(get: (header: string) => string | undefined): number | undefined {
  for (const h of RETRY_AFTER_HEADERS) {
    const v = get(h);
    if (v === undefined || v === '') continue;
    const n = Number(v);
    if (Number.isFinite(n) && n >= 0) return h === 'retry-after' ? n * 1000 : n;
    const date = Date.parse(v);
    if (h === 'retry-after' && Number.isFinite(date)) return Math.max(0, date - Date.now());
  }
  return undefined;
}

export function createSdkClient(o: SdkClientOptions): KeyVaultClient {
  const retry = o.retry ?? DEFAULT_RETRY;
  const holder: RetryHolder = {};
  const options: KeyClientOptions & CryptographyClientOptions = {
    retryOptions: { maxRetries: retry.maxRetries, retryDelayInMs: retry.retryDelayMs, maxRetryDelayInMs: retry.maxRetryDelayMs },
    additionalPolicies: [{ policy: retryGatePolicy(holder), position: 'perRetry' }, { policy: surfaceThrottlingPolicy, position: 'perRetry' }],
    ...(o.caPem !== undefined ? { tlsOptions: { ca: o.caPem } } : {}),
    ...(o.disableChallengeResourceVerification ? { disableChallengeResourceVerification: true } : {}),
  };
  const credential: TokenCredential = o.credential;
  const keys = new KeyClient(o.vaultUrl, credential, options);
  // The full SDK objects behind our VaultKeys: a CryptographyClient built from a KeyVaultKey skips the GET
  // it would otherwise make on first use.
  const full = new WeakMap<VaultKey, KeyVaultKey>();
  const adapt = (k: KeyVaultKey): VaultKey => {
    const v = toVaultKey(k);
    full.set(v, k);
    return v;
  };
  return {
    setRetryGate(gate: RetryGate) {
      holder.gate = gate;
    },
    async getKey(name: string, version: string | undefined, opts: CallOptions) {
      return adapt(await keys.getKey(name, { ...(version ? { version } : {}), abortSignal: opts.abortSignal }));
    },
    async rotateKey(name: string, opts: CallOptions) {
      return adapt(await keys.rotateKey(name, { abortSignal: opts.abortSignal }));
    },
    cryptoFor(key: VaultKey): KeyVersionCrypto {
      const c = new CryptographyClient(full.get(key) ?? key.id, credential, options);
      return {
        async wrapKey(alg, plaintext, opts) {
          const r = await c.wrapKey(alg, plaintext, { abortSignal: opts.abortSignal });
          return { result: r.result, ...(r.keyID !== undefined ? { keyId: r.keyID } : {}) };
        },
        async unwrapKey(alg, wrapped, opts) {
          const r = await c.unwrapKey(alg, wrapped, { abortSignal: opts.abortSignal });
          return { result: r.result };
        },
      };
    },
  };
}

function toVaultKey(k: KeyVaultKey): VaultKey {
  const p = k.properties;
  if (!k.id || !p.version) throw new Error('Key Vault returned a key without an id or version');
  return {
    id: k.id,
    name: k.name,
    version: p.version,
    keyType: k.keyType ?? k.key?.kty ?? 'unknown',
    // Key Vault always sends `enabled`; treat a missing flag as enabled rather than failing closed on a
    // field the service did not send.
    enabled: p.enabled !== false,
    ...(k.keyOperations ? { keyOps: [...k.keyOperations] } : {}),
    ...(p.notBefore ? { notBefore: p.notBefore } : {}),
    ...(p.expiresOn ? { expiresOn: p.expiresOn } : {}),
    ...(k.key?.n ? { modulusBytes: k.key.n.length } : {}),
  };
}

/** Build the Entra ID credential. Token requests happen later, inside the SDK pipeline, with our abort signal. */
export function createCredential(spec: CredentialSpec, clientSecret?: string, retry: RetrySettings = DEFAULT_RETRY): TokenCredentialLike {
  // Token requests happen inside a vault call, so they get the same bounded retries (the default would
  // retry Entra ID for seconds, past any deadline we are given).
  const common = { retryOptions: { maxRetries: retry.maxRetries, retryDelayInMs: retry.retryDelayMs, maxRetryDelayInMs: retry.maxRetryDelayMs } };
  switch (spec.type) {
    case 'default':
      return new DefaultAzureCredential({
        ...common,
        ...(spec.managedIdentityClientId ? { managedIdentityClientId: spec.managedIdentityClientId } : {}),
        ...(spec.tenantId ? { tenantId: spec.tenantId } : {}),
      });
    case 'workload-identity':
      // Missing fields come from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_FEDERATED_TOKEN_FILE, which the
      // AKS workload-identity webhook injects.
      return new WorkloadIdentityCredential({
        ...common,
        ...(spec.tenantId ? { tenantId: spec.tenantId } : {}),
        ...(spec.clientId ? { clientId: spec.clientId } : {}),
        ...(spec.tokenFilePath ? { tokenFilePath: spec.tokenFilePath } : {}),
      });
    case 'managed-identity':
      if (spec.resourceId) return new ManagedIdentityCredential({ ...common, resourceId: spec.resourceId });
      return new ManagedIdentityCredential({ ...common, ...(spec.clientId ? { clientId: spec.clientId } : {}) });
    case 'emulator':
      // The emulator accepts any bearer token; this one never leaves the loopback vault (config.ts checks).
      return { getToken: async () => ({ token: 'kekbroker-emulator-token', expiresOnTimestamp: Date.now() + 3600_000 }) };
    case 'client-secret':
      if (!clientSecret) throw new Error('client-secret credential needs a secret');
      return new ClientSecretCredential(spec.tenantId, spec.clientId, clientSecret, {
        ...common,
        ...(spec.authorityHost ? { authorityHost: spec.authorityHost } : {}),
        ...(spec.disableInstanceDiscovery ? { disableInstanceDiscovery: true } : {}),
      });
  }
}

/**
 * Azure Key Vault (and Managed HSM) as a KEK provider. Every wrap and unwrap is a Key Vault call:
 * - RSA keys use RSA-OAEP-256 and oct-HSM keys A256KW. The SDK would do RSA-OAEP (SHA-1) wraps locally
 *   with the cached public key; then a disabled key, a revoked permission or an outage would go unnoticed
 *   by wraps, and the vault's audit log would not show them.
 * - Neither algorithm takes associated data, so the tenant/keyring binding is wrapped with the key
 *   (aad-binding.ts).
 * - A wrap records the exact key version (version-ref.ts) and unwrap uses that version, so blobs made
 *   before a rotation keep unwrapping.
 * One CryptographyClient per key version is kept (each new client pays an auth-challenge round trip).
 */
import {
  KekError, MAX_WRAP_PLAINTEXT, deadlineSignal, isValidName, needs, raceSignal, throwIfAborted,
  type KekProvider, type RetryGate, type ProviderDescription, type WrapContext, type WrappedKey,
} from '@kekbroker/core';
import { DIGEST_BYTES, bindContext, unbindContext } from './aad-binding';
import { classifyAzureError } from './classify-error';
import type { KeyVaultClient, KeyVersionCrypto, VaultKey, WrapAlgorithm } from './client';
import { VersionCache } from './version-cache';
import { formatRef, parseRef } from './version-ref';

export interface AzureKeyVaultProviderOptions {
  /** Provider id from config. */
  id: string;
  /** `https://<vault>.vault.azure.net` or `https://<hsm>.managedhsm.azure.net`. */
  vaultUrl: string;
  keyName: string;
  client: KeyVaultClient;
  /** Upper bound for one call including the SDK's retries (default 2000 ms); the caller's signal may cut it shorter. */
  timeoutMs?: number;
  /**
   * Re-read the key's latest version and attributes this often, in the background (default 60 s; 0 never).
   * Picks up rotations made elsewhere (another replica, the portal, an Azure rotation policy) and a
   * disabled key: Key Vault may accept wrapKey, a public-key operation, on a disabled RSA key.
   */
  refreshIntervalMs?: number;
  /** Old key versions whose clients are kept for unwrap (default 64). */
  versionCacheSize?: number;
}

interface VersionEntry {
  readonly key: VaultKey;
  readonly ref: string;
  readonly alg: WrapAlgorithm;
  readonly crypto: KeyVersionCrypto;
  readonly loadedAt: number;
}

const KEY_NAME = /^[0-9a-zA-Z-]{1,127}$/;
/** Creating a version can take seconds on an HSM; rotation is an operator action, not on the request path. */
const ROTATE_TIMEOUT_MS = 30_000;
/** OAEP with SHA-256 spends 2 * 32 + 2 bytes of the modulus. */
const OAEP_SHA256_OVERHEAD = 66;

export class AzureKeyVaultProvider implements KekProvider {
  readonly type = 'azure-keyvault';
  readonly id: string;
  private readonly vaultUrl: string;
  private readonly host: string;
  private readonly keyName: string;
  private readonly client: KeyVaultClient;
  private readonly timeoutMs: number;
  private readonly refreshIntervalMs: number;
  private readonly closing = new AbortController();
  private current: VersionEntry | undefined;
  private latestLoad: Promise<VersionEntry> | undefined;
  /** Versions other than the current one. */
  private readonly versions: VersionCache<VersionEntry>;

  constructor(o: AzureKeyVaultProviderOptions) {
    needs(isValidName(o.id), 'provider id must be a DNS label');
    let url: URL | undefined;
    try {
      url = new URL(o.vaultUrl);
    } catch {
      url = undefined;
    }
    needs(url && url.protocol === 'https:' && (url.pathname === '/' || url.pathname === ''), `vaultUrl must be https://<vault host>[:port], not ${o.vaultUrl}`);
    needs(KEY_NAME.test(o.keyName), 'keyName must be 1..127 characters of 0-9, a-z, A-Z and -');
    this.id = o.id;
    this.vaultUrl = url.origin;
    this.host = url.hostname;
    this.keyName = o.keyName;
    this.client = o.client;
    this.timeoutMs = o.timeoutMs ?? 2000;
    this.refreshIntervalMs = o.refreshIntervalMs ?? 60_000;
    this.versions = new VersionCache(o.versionCacheSize ?? 64);
  }

  /** The SDK's retries ask this gate first (sdk-client.ts retryGatePolicy). */
  setRetryGate(gate: RetryGate): void {
    this.client.setRetryGate?.(gate);
  }

  async wrap(plaintext: Uint8Array, ctx: WrapContext, signal: AbortSignal): Promise<WrappedKey> {
    needs(plaintext.length > 0 && plaintext.length <= MAX_WRAP_PLAINTEXT, `plaintext must be 1..${MAX_WRAP_PLAINTEXT} bytes`);
    const s = this.signal(signal, this.timeoutMs);
    const v = await this.currentForWrap(s);
    this.checkWrapSize(v, plaintext.length);
    const inner = bindContext(plaintext, ctx);
    let out: { result: Uint8Array; keyId?: string };
    try {
      out = await v.crypto.wrapKey(v.alg, inner, { abortSignal: s });
    } catch (e) {
      throw classifyAzureError(e, this.where('wrap', v.key.version));
    } finally {
      inner.fill(0);
    }
    // The client is pinned to one version; a different kid would mean the ref we record is wrong.
    if (out.keyId !== undefined && out.keyId.split('/').pop() !== v.key.version) {
      throw new KekError('internal', `Azure Key Vault wrapped with ${out.keyId}, not the pinned version ${v.key.version}`, { provider: this.id });
    }
    if (out.result.length === 0) throw new KekError('internal', 'Azure Key Vault returned an empty wrapped key', { provider: this.id });
    return { keyVersionRef: v.ref, wrapped: Buffer.from(out.result) };
  }

  async unwrap(w: WrappedKey, ctx: WrapContext, signal: AbortSignal): Promise<Buffer> {
    const s = this.signal(signal, this.timeoutMs);
    const ref = parseRef(w.keyVersionRef);
    if (!ref) throw new KekError('corrupt', 'key version ref is not an Azure Key Vault ref', { provider: this.id });
    if (ref.host !== this.host || ref.name !== this.keyName) {
      throw new KekError('not-found', `wrapped by key ${ref.name} in vault ${ref.host}; provider ${this.id} uses key ${this.keyName} in ${this.host}`, { provider: this.id });
    }
    const v = await this.version(ref.version, s);
    // Refuse lengths the algorithm cannot produce: saves a vault call and keeps garbage away from it.
    const n = w.wrapped.length;
    const plausible = v.alg === 'A256KW' ? n >= 8 + 40 && n % 8 === 0 : v.key.modulusBytes === undefined ? n > 0 : n === v.key.modulusBytes;
    if (!plausible) throw new KekError('corrupt', `wrapped key has a length (${n}) that ${v.alg} with key ${this.keyName} cannot produce`, { provider: this.id });
    let inner: Uint8Array;
    try {
      inner = (await v.crypto.unwrapKey(v.alg, w.wrapped, { abortSignal: s })).result;
    } catch (e) {
      throw classifyAzureError(e, this.where('unwrap', v.key.version));
    }
    return unbindContext(inner, ctx, this.id);
  }

  async rotate(signal: AbortSignal): Promise<ProviderDescription> {
    const s = this.signal(signal, ROTATE_TIMEOUT_MS);
    let key: VaultKey;
    try {
      key = await this.client.rotateKey(this.keyName, { abortSignal: s });
    } catch (e) {
      throw classifyAzureError(e, this.where('rotate'));
    }
    return this.describeOf(this.install(key));
  }

  async describe(signal: AbortSignal): Promise<ProviderDescription> {
    return this.describeOf(await this.latest(this.signal(signal, this.timeoutMs), false));
  }

  /** A fresh read of the key (no crypto): exists, enabled, allows wrap/unwrap, inside its validity period. */
  async probe(signal: AbortSignal): Promise<void> {
    const v = await this.latest(this.signal(signal, this.timeoutMs), true);
    const k = v.key;
    if (!k.enabled) throw this.disabled(k);
    const missing = ['wrapKey', 'unwrapKey'].filter((op) => k.keyOps !== undefined && !k.keyOps.includes(op));
    if (missing.length > 0) {
      throw new KekError('permission-denied', `Azure Key Vault key ${this.keyName} does not permit ${missing.join(' and ')}: add them to its key_ops`, { provider: this.id });
    }
    const now = Date.now();
    if ((k.notBefore && k.notBefore.getTime() > now) || (k.expiresOn && k.expiresOn.getTime() <= now)) {
      throw new KekError('permission-denied', `Azure Key Vault key ${this.keyName} version ${k.version} is outside its validity period: extend it or rotate`, { provider: this.id });
    }
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.current = undefined;
    this.versions.clear();
  }

  /** The caller's signal, cut at `ms` and at close(). */
  private signal(caller: AbortSignal, ms: number): AbortSignal {
    if (this.closing.signal.aborted) throw new KekError('unavailable', `provider ${this.id} is closed`, { provider: this.id });
    const s = deadlineSignal(ms, AbortSignal.any([caller, this.closing.signal]));
    throwIfAborted(s, 'Azure Key Vault call');
    return s;
  }

  private where(op: string, version?: string): Parameters<typeof classifyAzureError>[1] {
    return { provider: this.id, op, vaultUrl: this.vaultUrl, key: version ? `${this.keyName}/${version}` : this.keyName };
  }

  private disabled(k: VaultKey): KekError {
    return new KekError('permission-denied', `Azure Key Vault key ${this.keyName} version ${k.version} in ${this.vaultUrl} is disabled: enable it or rotate the keyring away from it`, { provider: this.id });
  }

  private async currentForWrap(s: AbortSignal): Promise<VersionEntry> {
    let v = await this.latest(s, false);
    // Seen disabled at the last read: read again (it may be enabled by now) before refusing. Refusing here
    // matters because the vault itself may accept an RSA wrap under a disabled key.
    if (!v.key.enabled) v = await this.latest(s, true);
    if (!v.key.enabled) throw this.disabled(v.key);
    return v;
  }

  private checkWrapSize(v: VersionEntry, len: number): void {
    if (v.alg === 'A256KW') {
      // RFC 3394 wraps whole 64-bit blocks; the 32-byte digest keeps the total a multiple of 8 only then.
      needs(len % 8 === 0, `A256KW (Managed HSM oct key ${this.keyName}) wraps keys whose length is a multiple of 8 bytes, not ${len}`);
      return;
    }
    if (v.key.modulusBytes !== undefined) {
      const max = v.key.modulusBytes - OAEP_SHA256_OVERHEAD - DIGEST_BYTES;
      needs(len <= max, `RSA-OAEP-256 with ${v.key.modulusBytes * 8}-bit key ${this.keyName} wraps at most ${max} bytes, not ${len}`);
    }
  }

  /** The latest version: cached (refreshed in the background when stale), or read now when `fresh`. */
  private async latest(s: AbortSignal, fresh: boolean): Promise<VersionEntry> {
    const cur = this.current;
    if (cur && !fresh) {
      if (this.refreshIntervalMs > 0 && Date.now() - cur.loadedAt >= this.refreshIntervalMs) {
        // Serve the cached version meanwhile: a slow or failing vault read must not hold up a wrap.
        this.loadLatest().catch(() => undefined);
      }
      return cur;
    }
    return raceSignal(this.loadLatest(), s, 'Azure Key Vault key read');
  }

  /** One read of the latest version at a time, bounded by our own timeout so that no caller owns it. */
  private loadLatest(): Promise<VersionEntry> {
    if (this.latestLoad) return this.latestLoad;
    const p = (async () => {
      try {
        const key = await this.client.getKey(this.keyName, undefined, { abortSignal: deadlineSignal(this.timeoutMs, this.closing.signal) });
        return this.install(key);
      } catch (e) {
        throw classifyAzureError(e, this.where('read key'));
      }
    })();
    this.latestLoad = p;
    const clear = (): void => {
      if (this.latestLoad === p) this.latestLoad = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  /** Make `key` the current version; keep the previous one for unwraps. */
  private install(key: VaultKey): VersionEntry {
    const prev = this.current;
    let entry: VersionEntry;
    if (prev && prev.key.version === key.version && sameUsage(prev.key, key)) {
      entry = { ...prev, key, loadedAt: Date.now() };
    } else {
      entry = this.entryFor(key);
      if (prev && prev.key.version !== key.version) this.versions.put(prev.key.version, Promise.resolve(prev));
    }
    this.versions.delete(key.version);
    this.current = entry;
    return entry;
  }

  private entryFor(key: VaultKey): VersionEntry {
    if (key.name !== this.keyName) throw new KekError('internal', `Azure Key Vault returned key ${key.name} when asked for ${this.keyName}`, { provider: this.id });
    return { key, ref: formatRef(this.host, this.keyName, key.version), alg: algorithmFor(key, this.id), crypto: this.client.cryptoFor(key), loadedAt: Date.now() };
  }

  /** A version's crypto client: the current one, a cached one, or read once and kept. */
  private version(version: string, s: AbortSignal): Promise<VersionEntry> {
    if (this.current?.key.version === version) return Promise.resolve(this.current);
    const p = this.versions.get(version, async () => {
      try {
        const key = await this.client.getKey(this.keyName, version, { abortSignal: deadlineSignal(this.timeoutMs, this.closing.signal) });
        if (key.version !== version) throw new KekError('internal', `Azure Key Vault answered version ${key.version} for ${version}`, { provider: this.id });
        return this.entryFor(key);
      } catch (e) {
        throw classifyAzureError(e, this.where('read key', version));
      }
    });
    return raceSignal(p, s, 'Azure Key Vault key read');
  }

  private describeOf(v: VersionEntry): ProviderDescription {
    return {
      id: this.id,
      type: this.type,
      currentVersionRef: v.ref,
      details: {
        vaultUrl: this.vaultUrl,
        keyName: this.keyName,
        keyVersion: v.key.version,
        keyType: v.key.keyType,
        algorithm: v.alg,
        enabled: String(v.key.enabled),
      },
    };
  }
}

function algorithmFor(key: VaultKey, provider: string): WrapAlgorithm {
  if (key.keyType === 'RSA' || key.keyType === 'RSA-HSM') return 'RSA-OAEP-256';
  if (key.keyType === 'oct' || key.keyType === 'oct-HSM') return 'A256KW';
  throw new KekError('internal', `Azure Key Vault key ${key.name} is of type ${key.keyType}; kekbroker wraps with RSA (RSA-OAEP-256) or Managed HSM oct (A256KW) keys`, { provider });
}

/** Same version, same rules the SDK checks client-side: the existing crypto client is still right. */
function sameUsage(a: VaultKey, b: VaultKey): boolean {
  return (
    a.keyType === b.keyType &&
    (a.keyOps ?? []).join() === (b.keyOps ?? []).join() &&
    a.notBefore?.getTime() === b.notBefore?.getTime() &&
    a.expiresOn?.getTime() === b.expiresOn?.getTime()
  );
}

/**
 * KekProvider over Google Cloud KMS symmetric keys (purpose ENCRYPT_DECRYPT), written against the small
 * `GcpKmsClient` interface. Wrap = Encrypt with AAD = aadBytes(ctx); unwrap = Decrypt; rotate = a new
 * CryptoKeyVersion made primary. Version refs are the CryptoKeyVersion name plus the CryptoKey's create
 * time (version-ref.ts explains why).
 *
 * Wrap names the exact primary version it knows (not the CryptoKey): a primary change is eventually
 * consistent in Cloud KMS — Encrypt by key name may keep using the previous primary for a minute, in rare
 * cases hours (cloud.google.com/kms/docs/consistency) — while a named, ENABLED version is used at once.
 * So wrap() always produces the version describe() reports, and the key_id cannot flip back and forth
 * after a rotation. The known primary (and the key's create time) come from one GetCryptoKey, shared by
 * concurrent first callers, and are refreshed by rotate() and by every probe(): a rotation made elsewhere
 * (another replica, Cloud KMS scheduled rotation) is adopted at the next probe; until then wraps keep
 * using the previous version, which stays ENABLED and valid.
 */
import {
  KekError, MAX_WRAP_PLAINTEXT, aadBytes, isKekError, needs, raceSignal, throwIfAborted,
  type KekProvider, type RetryGate, type ProviderDescription, type WrapContext, type WrappedKey,
} from '@kekbroker/core';
import type { CallSettings, GcpKmsClient, KmsCryptoKey } from './client';
import { classifyGcpError, type GcpOperation } from './classify-error';
import { checkDecrypt, checkEncrypt, crcOf } from './integrity';
import { pause, withRetries, type RetryPolicy } from './retry';
import { KEY_NAME, formatTimestamp, formatVersionRef, parseVersionName, parseVersionRef } from './version-ref';

export interface GcpKmsProviderOptions {
  /** Provider id from config. */
  id: string;
  /** projects/P/locations/L/keyRings/R/cryptoKeys/K */
  keyName: string;
  client: GcpKmsClient;
  /** Timeout of one RPC (default 2000 ms). */
  requestTimeoutMs?: number;
  /** Upper bound for one operation including retries (default 5000 ms); the caller's signal may end it sooner. */
  callTimeoutMs?: number;
  /** Attempts per operation for transient failures, including the first (default 3). */
  maxAttempts?: number;
  /** First retry pause (default 200 ms, doubling): 3 attempts then span ≥ 450 ms, longer than a channel's reconnect backoff. */
  retryBaseDelayMs?: number;
  /** How long rotate() waits for a new HSM version to finish PENDING_GENERATION (default 60 s). */
  rotationTimeoutMs?: number;
  /**
   * Least time between two re-reads of the key forced by a stale-looking cache (a disabled cached primary,
   * a ref with another key create time); default 10 s. Read requests have a small quota (300/min per
   * project), and a flood of failing wraps or forged refs must not spend it.
   */
  refreshMinIntervalMs?: number;
  /** Extra public facts for describe().details (e.g. the endpoint). */
  details?: Record<string, string>;
}

interface KeyFacts {
  createTime: string;
  /** Full CryptoKeyVersion name of the primary, if the key has one. */
  primary: string | undefined;
  primaryState: string;
  purpose: string;
}

const STATE_NAMES: Record<number, string> = { 1: 'ENABLED', 2: 'DISABLED', 3: 'DESTROYED', 4: 'DESTROY_SCHEDULED', 5: 'PENDING_GENERATION', 8: 'GENERATION_FAILED' };
const PURPOSE_NAMES: Record<number, string> = { 1: 'ENCRYPT_DECRYPT' };
const enumName = (v: unknown, names: Record<number, string>): string => (typeof v === 'number' ? (names[v] ?? String(v)) : typeof v === 'string' ? v : 'UNSPECIFIED');
const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

export class GcpKmsProvider implements KekProvider {
  readonly type = 'gcp-kms';
  readonly id: string;
  private readonly keyName: string;
  private readonly client: GcpKmsClient;
  private readonly policy: RetryPolicy;
  private readonly requestTimeoutMs: number;
  private readonly callTimeoutMs: number;
  private readonly rotationTimeoutMs: number;
  private readonly refreshMinIntervalMs: number;
  private readonly extraDetails: Record<string, string>;
  private readonly closing = new AbortController();
  private facts: KeyFacts | undefined;
  private factsLoad: Promise<KeyFacts> | undefined;
  private factsLoadedAt = Number.NEGATIVE_INFINITY;

  constructor(opts: GcpKmsProviderOptions) {
    needs(KEY_NAME.test(opts.keyName), `GCP KMS keyName must be projects/P/locations/L/keyRings/R/cryptoKeys/K, got "${opts.keyName}"`);
    this.id = opts.id;
    this.keyName = opts.keyName;
    this.client = opts.client;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 2000;
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
    this.policy = { maxAttempts: opts.maxAttempts ?? 3, baseDelayMs: opts.retryBaseDelayMs ?? 200 };
    this.rotationTimeoutMs = opts.rotationTimeoutMs ?? 60_000;
    this.refreshMinIntervalMs = opts.refreshMinIntervalMs ?? 10_000;
    this.extraDetails = opts.details ?? {};
  }

  /** Our retry loop (retry.ts; the SDK's is off) asks this gate before every retry. */
  setRetryGate(gate: RetryGate): void {
    this.policy.gate = gate;
  }

  async wrap(plaintext: Uint8Array, ctx: WrapContext, signal: AbortSignal): Promise<WrappedKey> {
    needs(plaintext.length > 0 && plaintext.length <= MAX_WRAP_PLAINTEXT, `plaintext must be 1..${MAX_WRAP_PLAINTEXT} bytes`);
    const aad = aadBytes(ctx);
    throwIfAborted(signal, 'GCP KMS wrap');
    let facts = await this.keyFacts(signal);
    try {
      return await this.encryptWith(facts, plaintext, aad, signal);
    } catch (e) {
      // Our cached primary was disabled or destroyed: if the key has another primary by now (rotated
      // elsewhere), use it at once rather than failing until the next probe.
      if (!isKekError(e) || e.code !== 'not-found') throw e;
      const stale = facts.primary;
      facts = (await this.refreshFacts(signal)) ?? facts;
      if (facts.primary === stale) throw e;
      return this.encryptWith(facts, plaintext, aad, signal);
    }
  }

  private async encryptWith(facts: KeyFacts, plaintext: Uint8Array, aad: Buffer, signal: AbortSignal): Promise<WrappedKey> {
    const version = this.primaryOf(facts);
    const pt = view(plaintext);
    const req = { name: version, plaintext: pt, additionalAuthenticatedData: aad, plaintextCrc32c: crcOf(pt), additionalAuthenticatedDataCrc32c: crcOf(aad) };
    const out = await this.rpc('Encrypt', version, signal, async (call) => checkEncrypt(await this.client.encrypt(req, call), this.keyName, this.id));
    if (out.versionName !== version) {
      throw new KekError('internal', `GCP KMS answered Encrypt with ${out.versionName} although ${version} was requested`, { provider: this.id });
    }
    return { keyVersionRef: formatVersionRef(version, facts.createTime), wrapped: out.ciphertext };
  }

  async unwrap(w: WrappedKey, ctx: WrapContext, signal: AbortSignal): Promise<Buffer> {
    const aad = aadBytes(ctx);
    const ref = parseVersionRef(w.keyVersionRef);
    if (!ref) throw new KekError('corrupt', 'key version ref is not a GCP KMS version ref', { provider: this.id });
    if (ref.keyName !== this.keyName) {
      throw new KekError('not-found', `wrapped under GCP KMS key ${ref.keyName}; provider ${this.id} uses ${this.keyName}`, { provider: this.id });
    }
    if (w.wrapped.length === 0 || w.wrapped.length > 65536) throw new KekError('corrupt', 'wrapped key has an impossible length for a GCP KMS ciphertext', { provider: this.id });
    throwIfAborted(signal, 'GCP KMS unwrap');
    let facts = await this.keyFacts(signal);
    if (ref.keyCreateTime !== facts.createTime) facts = (await this.refreshFacts(signal)) ?? facts; // maybe our cache is the stale one
    if (ref.keyCreateTime !== facts.createTime) {
      throw new KekError('not-found',
        `wrapped by an earlier GCP KMS key named ${this.keyName} (created ${ref.keyCreateTime}); the key now under that name was created ${facts.createTime} and cannot unwrap it`,
        { provider: this.id });
    }
    const ct = view(w.wrapped);
    const req = { name: this.keyName, ciphertext: ct, additionalAuthenticatedData: aad, ciphertextCrc32c: crcOf(ct), additionalAuthenticatedDataCrc32c: crcOf(aad) };
    return this.rpc('Decrypt', this.keyName, signal, async (call) => checkDecrypt(await this.client.decrypt(req, call)));
  }

  /**
   * CreateCryptoKeyVersion, wait until it is ENABLED (HSM versions start PENDING_GENERATION), then
   * UpdateCryptoKeyPrimaryVersion. The create is never retried (a retry after a lost answer would add a
   * second version); if the wait or the switch fails, the new version exists but is not primary, and the
   * next rotate() simply creates another.
   */
  async rotate(signal: AbortSignal): Promise<ProviderDescription> {
    throwIfAborted(signal, 'GCP KMS rotate');
    const created = await this.rpc('CreateCryptoKeyVersion', this.keyName, signal, (call) => this.client.createCryptoKeyVersion({ parent: this.keyName }, call), 1);
    const version = parseVersionName(created.name ?? '');
    if (!version || version.keyName !== this.keyName) {
      throw new KekError('internal', `GCP KMS created version "${created.name ?? ''}", which is not a version of ${this.keyName}`, { provider: this.id });
    }
    await this.waitUntilEnabled(version.versionName, enumName(created.state, STATE_NAMES), signal);
    const key = await this.rpc('UpdateCryptoKeyPrimaryVersion', this.keyName, signal, (call) =>
      this.client.updateCryptoKeyPrimaryVersion({ name: this.keyName, cryptoKeyVersionId: version.versionId }, call));
    this.facts = this.factsFrom(key);
    return this.describeNow(this.facts);
  }

  async describe(signal: AbortSignal): Promise<ProviderDescription> {
    throwIfAborted(signal, 'GCP KMS describe');
    return this.describeNow(await this.keyFacts(signal));
  }

  /** GetCryptoKey (no crypto call, no quota of Cryptographic requests): the key exists, we may read it, its primary is ENABLED. */
  async probe(signal: AbortSignal): Promise<void> {
    throwIfAborted(signal, 'GCP KMS probe');
    const facts = await this.loadFacts(signal);
    if (facts.purpose !== 'ENCRYPT_DECRYPT') {
      throw new KekError('invalid-input', `GCP KMS key ${this.keyName} has purpose ${facts.purpose}; kekbroker needs a symmetric ENCRYPT_DECRYPT key`, { provider: this.id });
    }
    this.primaryOf(facts);
    if (facts.primaryState !== 'ENABLED') {
      throw new KekError('not-found', `GCP KMS primary version ${facts.primary} is ${facts.primaryState}: enable it, or rotate to a new version`, { provider: this.id });
    }
  }

  async close(): Promise<void> {
    this.closing.abort();
    await this.client.close();
  }

  private describeNow(facts: KeyFacts): ProviderDescription {
    const primary = this.primaryOf(facts);
    return {
      id: this.id,
      type: this.type,
      currentVersionRef: formatVersionRef(primary, facts.createTime),
      details: { ...this.extraDetails, keyName: this.keyName, primaryVersion: parseVersionName(primary)?.versionId ?? '', keyCreateTime: facts.createTime },
    };
  }

  private primaryOf(facts: KeyFacts): string {
    if (!facts.primary) throw new KekError('not-found', `GCP KMS key ${this.keyName} has no primary version: create one and make it primary`, { provider: this.id });
    return facts.primary;
  }

  /** Cached key facts; the first callers share one GetCryptoKey that no single caller's abort can cancel. */
  private async keyFacts(signal: AbortSignal): Promise<KeyFacts> {
    return this.facts ?? this.sharedLoad(signal);
  }

  /** A fresh read for a cache that looks stale, unless one was made less than refreshMinIntervalMs ago. */
  private async refreshFacts(signal: AbortSignal): Promise<KeyFacts | undefined> {
    if (Date.now() - this.factsLoadedAt < this.refreshMinIntervalMs) return undefined;
    return this.sharedLoad(signal);
  }

  private async sharedLoad(signal: AbortSignal): Promise<KeyFacts> {
    throwIfAborted(signal, 'GCP KMS key lookup');
    if (!this.factsLoad) {
      this.factsLoad = this.loadFacts(this.closing.signal).finally(() => {
        this.factsLoad = undefined;
      });
      this.factsLoad.catch(() => undefined); // every waiter may have given up; not an unhandled rejection
    }
    return raceSignal(this.factsLoad, signal, 'GCP KMS key lookup');
  }

  private async loadFacts(signal: AbortSignal): Promise<KeyFacts> {
    const key = await this.rpc('GetCryptoKey', this.keyName, signal, (call) => this.client.getCryptoKey({ name: this.keyName }, call));
    this.facts = this.factsFrom(key);
    this.factsLoadedAt = Date.now();
    return this.facts;
  }

  private factsFrom(key: KmsCryptoKey): KeyFacts {
    const createTime = formatTimestamp(key.createTime);
    if (!createTime) throw new KekError('internal', `GCP KMS returned CryptoKey ${this.keyName} without a valid create_time`, { provider: this.id });
    const primary = key.primary?.name ?? undefined;
    if (primary !== undefined && parseVersionName(primary)?.keyName !== this.keyName) {
      throw new KekError('internal', `GCP KMS reported primary "${primary}", which is not a version of ${this.keyName}`, { provider: this.id });
    }
    return { createTime, primary, primaryState: enumName(key.primary?.state, STATE_NAMES), purpose: enumName(key.purpose, PURPOSE_NAMES) };
  }

  private async waitUntilEnabled(versionName: string, state: string, signal: AbortSignal): Promise<void> {
    const until = AbortSignal.any([signal, AbortSignal.timeout(this.rotationTimeoutMs)]);
    for (let pauseMs = 200; state === 'PENDING_GENERATION'; pauseMs = Math.min(pauseMs * 2, 2000)) {
      if (!(await pause(pauseMs, until))) {
        throw new KekError('timeout', `GCP KMS version ${versionName} is still PENDING_GENERATION; it was not made primary (rotate again later)`, { provider: this.id });
      }
      const v = await this.rpc('GetCryptoKeyVersion', versionName, until, (call) => this.client.getCryptoKeyVersion({ name: versionName }, call));
      state = enumName(v.state, STATE_NAMES);
    }
    if (state !== 'ENABLED') {
      throw new KekError('unavailable', `GCP KMS version ${versionName} ended in state ${state} instead of ENABLED; it was not made primary`, { provider: this.id });
    }
  }

  private async rpc<T>(op: GcpOperation, resource: string, signal: AbortSignal, fn: (call: CallSettings) => Promise<T>, attempts = this.policy.maxAttempts): Promise<T> {
    const s = AbortSignal.any([signal, this.closing.signal, AbortSignal.timeout(this.callTimeoutMs)]);
    try {
      return await withRetries({ ...this.policy, maxAttempts: attempts }, s, () => fn({ signal: s, timeoutMs: this.requestTimeoutMs }));
    } catch (e) {
      throw classifyGcpError(e, { provider: this.id, op, resource });
    }
  }
}

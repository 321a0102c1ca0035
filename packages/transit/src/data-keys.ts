/**
 * The encrypt-side data-key cache, in the manner of the AWS Encryption SDK's caching materials manager:
 * one data key per (transit key, keyring generation, tenant), wrapped ONCE by the keyring's providers
 * (Keyring.wrap: a multi-provider envelope bound to the tenant), then reused until it reaches its age,
 * message or byte limit. Encrypts cost no KMS call while a key is fresh; concurrent misses share one wrap.
 *
 * Derived keys do not get a data key per context: the per-message key is HKDF(data key, key name, context)
 * (see ciphertext.ts), so a million contexts still cost one KMS wrap, as Vault's own derivation does.
 *
 * Ownership (core/secrets.ts): the cache owns every data key. Callers never receive the buffer; they pass a
 * synchronous function that reads it during `use`, so a retire (zeroing) can never overlap a reader.
 */
import { randomBytes } from 'node:crypto';
import { KEY_BYTES, KekError, decodeEnvelope, generationOf, zeroize } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import { messageKey } from './ciphertext';
import { latestVersion, versionOfRef } from './versions';

export interface DataKeyLimits {
  maxAgeMs: number;
  /** AES-GCM with random 96-bit nonces: stay far below 2^32 messages per key (NIST SP 800-38D). */
  maxMessages: number;
  maxBytes: number;
  maxEntries: number;
}

export const DEFAULT_LIMITS: DataKeyLimits = { maxAgeMs: 5 * 60_000, maxMessages: 2 ** 30, maxBytes: 2 ** 40, maxEntries: 10_000 };

/** What a reader sees, only for the duration of its synchronous callback. */
export interface DataKeyView {
  readonly dataKey: Buffer;
  readonly envelope: Buffer;
  readonly version: number;
  /** The message key for (transit key, context), derived once per data key and kept by the entry. */
  messageKey(keyName: string, context: Buffer): Buffer;
}

interface Entry extends DataKeyView {
  readonly keyId: string;
  readonly derived: Map<string, Buffer>;
  readonly createdAt: number;
  messages: number;
  bytes: number;
}

export interface DataKeySpec {
  keyName: string;
  tenant: string;
  keyring: Keyring;
  versionProvider: string;
}

export class DataKeyCache {
  private readonly entries = new Map<string, Entry>();
  /** The same entries by (tenant, envelope), so a decrypt of a recent ciphertext needs no unwrap at all. */
  private readonly byEnvelope = new Map<string, Entry>();
  private readonly flights = new Map<string, Promise<void>>();
  private readonly sweeper: NodeJS.Timeout;
  /** Data keys created (each one keyring wrap, i.e. one call per provider). */
  created = 0;

  constructor(
    private readonly limits: DataKeyLimits = DEFAULT_LIMITS,
    private readonly onCreate?: (keyName: string) => void,
    private readonly now: () => number = Date.now,
  ) {
    // An idle key must not sit in memory past its age limit.
    this.sweeper = setInterval(() => this.sweep(), Math.min(limits.maxAgeMs, 30_000));
    this.sweeper.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Run `fn` with a fresh data key for `spec`, counting `bytes` against it; creates one if needed. */
  async use<T>(spec: DataKeySpec, bytes: number, signal: AbortSignal, fn: (k: DataKeyView) => T): Promise<T> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const keyId = spec.keyring.keyId;
      if (!keyId) throw new KekError('unavailable', `keyring ${spec.keyring.name} is not ready: ${spec.keyring.status().reason}`);
      const slot = slotOf(spec, keyId);
      const e = this.entries.get(slot);
      if (e && this.fresh(e, bytes)) {
        e.messages += 1;
        e.bytes += bytes;
        return fn(e);
      }
      let flight = this.flights.get(slot);
      if (!flight) {
        flight = this.create(spec, slot).finally(() => this.flights.delete(slot));
        this.flights.set(slot, flight);
      }
      await flight;
      if (signal.aborted) throw new KekError('timeout', 'transit encrypt: deadline exceeded while creating a data key');
    }
    // Only reachable when the keyring rotates (or limits are exhausted) faster than we can wrap.
    throw new KekError('unavailable', 'transit: could not obtain a fresh data key; retry');
  }

  /**
   * Decrypt side: run `fn` with the data key of `envelope` if this replica made it for `tenant`, it is still
   * within its age limit, and it belongs to the keyring's current generation (a retired or revoked generation
   * is never served from here); otherwise undefined, and the caller unwraps through the keyring.
   */
  withEnvelope<T>(tenant: string, envelope: Buffer, keyring: Keyring, fn: (k: DataKeyView) => T): T | undefined {
    const e = this.byEnvelope.get(envelopeSlot(tenant, envelope));
    if (!e || e.keyId !== keyring.keyId || this.now() - e.createdAt >= this.limits.maxAgeMs) return undefined;
    return fn(e);
  }

  private fresh(e: Entry, bytes: number): boolean {
    return this.now() - e.createdAt < this.limits.maxAgeMs && e.messages < this.limits.maxMessages && e.bytes + bytes <= this.limits.maxBytes;
  }

  private async create(spec: DataKeySpec, requestedSlot: string): Promise<void> {
    const dataKey = randomBytes(KEY_BYTES);
    let handedOver = false;
    try {
      // Not the caller's deadline: waiters with longer deadlines share this wrap. The keyring bounds it.
      const wrapped = await spec.keyring.wrap(spec.tenant, dataKey, AbortSignal.timeout(30_000));
      const version = versionOfEnvelope(wrapped.ciphertext, spec);
      const slot = slotOf(spec, wrapped.keyId);
      this.retire(slot);
      if (slot !== requestedSlot) this.retire(requestedSlot);
      const entry = newEntry(dataKey, wrapped.ciphertext, version, wrapped.keyId, this.now());
      this.entries.set(slot, entry);
      this.byEnvelope.set(envelopeSlot(spec.tenant, wrapped.ciphertext), entry);
      handedOver = true;
      this.created += 1;
      this.onCreate?.(spec.keyName);
      this.evictOverflow();
    } finally {
      if (!handedOver) zeroize(dataKey);
    }
  }

  private retire(slot: string): void {
    const e = this.entries.get(slot);
    if (!e) return;
    this.entries.delete(slot);
    for (const [k, v] of this.byEnvelope) if (v === e) this.byEnvelope.delete(k);
    // Safe: readers only touch these inside a synchronous callback.
    zeroize(e.dataKey, ...e.derived.values());
    e.derived.clear();
  }

  private evictOverflow(): void {
    while (this.entries.size > this.limits.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.retire(oldest);
    }
  }

  sweep(): void {
    for (const [slot, e] of this.entries) if (!this.fresh(e, 0)) this.retire(slot);
  }

  clear(): void {
    for (const slot of [...this.entries.keys()]) this.retire(slot);
    clearInterval(this.sweeper);
  }
}

/** Derived message keys kept per data key; past this many contexts the memo starts over. */
const MAX_DERIVED = 1024;

function newEntry(dataKey: Buffer, envelope: Buffer, version: number, keyId: string, createdAt: number): Entry {
  const derived = new Map<string, Buffer>();
  return {
    dataKey, envelope, version, keyId, createdAt, messages: 0, bytes: 0, derived,
    messageKey(keyName, context) {
      const id = `${keyName}\0${context.toString('base64')}`;
      let k = derived.get(id);
      if (!k) {
        if (derived.size >= MAX_DERIVED) {
          zeroize(...derived.values());
          derived.clear();
        }
        derived.set(id, (k = messageKey(dataKey, { keyName, context })));
      }
      return k;
    },
  };
}

function envelopeSlot(tenant: string, envelope: Buffer): string {
  return `${tenant}\0${envelope.toString('latin1')}`;
}

function slotOf(spec: DataKeySpec, keyId: string): string {
  return `${spec.keyName}\0${spec.tenant}\0${keyId}`;
}

/**
 * The version a data-key envelope was made under: the version provider's ref in the envelope. When that
 * provider was down at wrap time (failover), the keyring's described refs give it, provided they name
 * exactly the envelope's generation.
 */
export function versionOfEnvelope(envelope: Uint8Array, spec: Pick<DataKeySpec, 'keyring' | 'versionProvider'>): number {
  const env = decodeEnvelope(envelope);
  const own = env.wraps.find((w) => w.providerId === spec.versionProvider);
  const fromWrap = own ? versionOfRef(own.keyVersionRef) : undefined;
  if (fromWrap !== undefined) return fromWrap;
  const status = spec.keyring.status();
  const gen = generationOf(status.providers.map((p) => ({ providerId: p.id, keyVersionRef: p.currentVersionRef })));
  const latest = latestVersion(status, spec.versionProvider);
  if (latest !== undefined && gen.equals(env.generation)) return latest;
  throw new KekError('unavailable', `transit: cannot tell the version of keyring ${spec.keyring.name}'s new data key (version provider ${spec.versionProvider} did not wrap it)`);
}

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
import { KEY_BYTES, KekError, decodeEnvelope, generationOf, parseKeyId, zeroize } from '@kekbroker/core';
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

/**
 * The fleet's shared data keys (packages/ha's SharedDataKeys implements it, when Redis is configured): a data
 * key made by one replica is used by all, stored in Redis only sealed, its usage limits counted fleet-wide
 * by reserved blocks. Ownership: every dataKey it returns (made by `create` or opened from Redis) is ours.
 */
export interface SharedDataKeyStore {
  available(keyring: string): boolean;
  acquire(slot: SharedSlot, limits: DataKeyLimits, bytes: number, signal: AbortSignal, create: () => Promise<{ dataKey: Buffer; envelope: Buffer }>, exhaustedId?: string):
    Promise<{ id: string; dataKey: Buffer; envelope: Buffer; ageMs: number; budget: Budget; created: boolean }>;
  reserve(slot: SharedSlot, id: string, limits: DataKeyLimits, bytes: number): Promise<Budget | undefined>;
}
export interface SharedSlot { keyName: string; tenant: string; keyring: string; generation: string }
interface Budget { messages: number; bytes: number }
interface Made { dataKey: Buffer; envelope: Buffer; keyId: string }

/** How this replica got a data key: it wrapped one and shared it, adopted the fleet's, or keeps one to itself. */
export type DataKeySource = 'shared' | 'fleet' | 'local';

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
  /** Shared keys only: the fleet id and what is left of this replica's reserved block. */
  sharedId?: string;
  budget?: Budget;
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
  /** Per slot: the shared key id found spent fleet-wide, so the next acquire does not adopt it again. */
  private readonly spent = new Map<string, string>();
  /** Data keys created (each one keyring wrap, i.e. one call per provider). */
  created = 0;

  constructor(
    private readonly limits: DataKeyLimits = DEFAULT_LIMITS,
    private readonly onObtain?: (keyName: string, source: DataKeySource, why?: string) => void,
    private readonly now: () => number = Date.now,
    private readonly shared?: SharedDataKeyStore,
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
    // Several rounds: a rotation during a wrap, or (shared keys with small limits) concurrent requests
    // spending a freshly reserved block before this one gets to it.
    for (let attempt = 0; attempt < 20; attempt++) {
      const keyId = spec.keyring.keyId;
      if (!keyId) throw new KekError('unavailable', `keyring ${spec.keyring.name} is not ready: ${spec.keyring.status().reason}`);
      const slot = slotOf(spec, keyId);
      const e = this.entries.get(slot);
      const fresh = e !== undefined && this.fresh(e, bytes);
      if (fresh && (!e.budget || (e.budget.messages >= 1 && e.budget.bytes >= bytes))) {
        e.messages += 1;
        e.bytes += bytes;
        if (e.budget) {
          e.budget.messages -= 1;
          e.budget.bytes -= bytes;
        }
        return fn(e);
      }
      await this.inFlight(slot, () => (fresh ? this.refill(spec, slot, e, bytes) : this.create(spec, slot, keyId, bytes)));
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

  /** One creation or refill per slot at a time; concurrent callers wait for it and look again. */
  private inFlight(slot: string, run: () => Promise<void>): Promise<void> {
    let flight = this.flights.get(slot);
    if (!flight) {
      flight = run().finally(() => this.flights.delete(slot));
      this.flights.set(slot, flight);
    }
    return flight;
  }

  /** A shared key whose reserved block is spent: reserve the next block, or retire it if the fleet spent it. */
  private async refill(spec: DataKeySpec, slot: string, e: Entry, bytes: number): Promise<void> {
    let budget: Budget | undefined;
    try {
      budget = await this.shared?.reserve(sharedSlot(spec, e.keyId), e.sharedId as string, this.limits, bytes);
    } catch {
      budget = undefined; // Redis failed: we cannot count fleet-wide any more; retire, the next key is local
    }
    if (budget && e.budget) {
      e.budget.messages += budget.messages;
      e.budget.bytes += budget.bytes;
      return;
    }
    this.spent.set(slot, e.sharedId as string);
    this.retire(slot);
  }

  private async create(spec: DataKeySpec, requestedSlot: string, keyId: string, bytes: number): Promise<void> {
    let wrapFailure: Error | undefined;
    let made: Made | undefined;
    // Not the caller's deadline: waiters with longer deadlines share this wrap. The keyring bounds it.
    const wrap = async (): Promise<Made> => {
      const dataKey = randomBytes(KEY_BYTES);
      try {
        const wrapped = await spec.keyring.wrap(spec.tenant, dataKey, AbortSignal.timeout(30_000));
        made = { dataKey, envelope: wrapped.ciphertext, keyId: wrapped.keyId };
        // Not to be shared under the slot we locked (its generation is gone); kept local below.
        if (wrapped.keyId !== keyId) throw new KekError('unavailable', 'keyring generation moved during the wrap');
        return made;
      } catch (e) {
        wrapFailure = e as Error;
        if (!made) zeroize(dataKey);
        throw e;
      }
    };
    const shared = this.shared;
    if (shared?.available(spec.keyring.name)) {
      let got: Awaited<ReturnType<SharedDataKeyStore['acquire']>> | undefined;
      try {
        got = await shared.acquire(sharedSlot(spec, keyId), this.limits, bytes, AbortSignal.timeout(30_000), wrap, this.spent.get(requestedSlot));
      } catch {
        if (made) return this.keepLocal(spec, requestedSlot, made, 'generation moved');
        if (wrapFailure) throw wrapFailure;
        // Redis failed: fall through to a key of our own (the fleet makes keys cheaper, never more fragile).
      }
      if (got) {
        if (got.created) this.created += 1;
        this.install(spec, requestedSlot, { ...got, keyId, createdAt: this.now() - got.ageMs, sharedId: got.id || undefined, budget: got.id ? { ...got.budget } : undefined });
        this.onObtain?.(spec.keyName, got.id ? (got.created ? 'shared' : 'fleet') : 'local', got.id ? undefined : 'sealing key not open');
        return;
      }
    }
    try {
      await wrap();
    } catch (e) {
      if (!made) throw e; // the KMS failed; a moved generation still gave us a key
    }
    this.keepLocal(spec, requestedSlot, made as unknown as Made, shared ? 'redis or sealing key unavailable' : 'no redis configured');
  }

  /** A data key this replica keeps to itself, under the slot of the generation it was actually wrapped in. */
  private keepLocal(spec: DataKeySpec, requestedSlot: string, m: Made, why: string): void {
    this.created += 1;
    const slot = slotOf(spec, m.keyId);
    this.install(spec, slot, { ...m, createdAt: this.now() });
    if (slot !== requestedSlot) this.retire(requestedSlot);
    this.onObtain?.(spec.keyName, 'local', why);
  }

  private install(spec: DataKeySpec, slot: string, k: { dataKey: Buffer; envelope: Buffer; keyId: string; createdAt: number; sharedId?: string; budget?: Budget }): void {
    let version: number;
    try {
      version = versionOfEnvelope(k.envelope, spec);
    } catch (e) {
      zeroize(k.dataKey);
      throw e;
    }
    this.retire(slot);
    const entry = newEntry(k.dataKey, k.envelope, version, k.keyId, k.createdAt);
    entry.sharedId = k.sharedId;
    entry.budget = k.budget;
    this.entries.set(slot, entry);
    this.byEnvelope.set(envelopeSlot(spec.tenant, k.envelope), entry);
    this.evictOverflow();
  }

  /** An invalidation from the fleet bus (or this replica): drop the matching data keys of a keyring. */
  invalidate(inv: { keyring: string; tenant?: string; generation?: string }): number {
    let n = 0;
    for (const [slot, e] of this.entries) {
      const id = parseKeyId(e.keyId);
      if (!id || id.keyring !== inv.keyring) continue;
      if (inv.generation !== undefined && id.generation.toString('hex') !== inv.generation) continue;
      if (inv.tenant !== undefined && slot.split('\0')[1] !== inv.tenant) continue;
      this.retire(slot);
      n++;
    }
    return n;
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

function sharedSlot(spec: DataKeySpec, keyId: string): SharedSlot {
  const gen = parseKeyId(keyId)?.generation.toString('hex') ?? keyId;
  return { keyName: spec.keyName, tenant: spec.tenant, keyring: spec.keyring.name, generation: gen };
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

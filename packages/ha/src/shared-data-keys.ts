/**
 * Transit data keys shared by the fleet (packages/transit's SharedDataKeyStore), so that every replica
 * encrypts under the same current data key per (transit key, tenant, keyring generation) and only one of them
 * pays the KMS wrap per data-key lifetime.
 *
 * One Redis hash per slot, `<prefix>{tdk:<sha256 of slot>}:cur`, expiring with the key's max age:
 *   id   random id of the current data key (a new key gets a new id)
 *   key  the data key SEALED under the keyring's cache-sealing key (sealed-entry.ts; AAD binds tenant,
 *        keyring, generation and the slot hash, which covers the transit key name): never in the clear
 *   env  the data-key envelope (public: it is in every ciphertext made under it)
 *   m, b messages and bytes RESERVED so far, fleet-wide
 *
 * Usage limits are counted fleet-wide without a Redis call per message: a replica reserves a block
 * (1/64 of maxMessages and of maxBytes, at least what it needs) with one atomic script, spends it locally,
 * and reserves the next block when it runs out. Reserved is never less than used, so the fleet never seals
 * more than maxMessages/maxBytes under one key; a replica that dies wastes at most its block (a key retires a
 * little early, never late). The key's age is the hash's TTL, read by every replica (PTTL): no clock skew.
 * A new key is made under a short lock (one wrap for the fleet); the others wait for the flight channel.
 */
import { createHash, randomBytes } from 'node:crypto';
import { throwIfAborted } from '@kekbroker/core';
import type { FleetBus } from './bus';
import type { RedisKeys } from './keys';
import type { RedisClient, RedisHealth } from './redis-client';
import { entryHeader, openEntry, sealEntry } from './sealed-entry';
import type { SealingKeys } from './sealing-keys';

/** Structural copies of packages/transit's types (this package does not depend on transit). */
export interface DataKeySlot { keyName: string; tenant: string; keyring: string; generation: string }
export interface UsageLimits { maxAgeMs: number; maxMessages: number; maxBytes: number }
export interface SharedKey { id: string; dataKey: Buffer; envelope: Buffer; ageMs: number; budget: { messages: number; bytes: number }; created: boolean }

const BLOCKS = 64;
const POLL_MS = 100;
const RESERVE = `
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
local m = redis.call('HINCRBY', KEYS[1], 'm', ARGV[2])
local b = redis.call('HINCRBY', KEYS[1], 'b', ARGV[3])
if m > tonumber(ARGV[4]) or b > tonumber(ARGV[5]) then return 0 end
return 1`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export interface SharedDataKeysOptions {
  redis: RedisClient;
  keys: RedisKeys;
  health: RedisHealth;
  bus: FleetBus;
  sealing: SealingKeys;
  commandTimeoutMs: number;
  lockMs: number;
  isRevoked(keyring: string, generation: string): boolean;
}

export class SharedDataKeys {
  readonly counters = { adopted: 0, created: 0, reservations: 0, exhausted: 0, rejected: 0, redisErrors: 0 };

  constructor(private readonly o: SharedDataKeysOptions) {}

  available(keyring: string): boolean {
    return this.o.health.up && this.o.sealing.current(keyring) !== undefined;
  }

  /**
   * The fleet's current data key for `slot` with a reserved budget for at least `bytes`, or a new one made by
   * `create` (the KMS wrap) under the fleet lock. `exhaustedId` names a key the caller found spent. Throws
   * on a Redis failure: the caller then makes a local key.
   */
  async acquire(slot: DataKeySlot, limits: UsageLimits, bytes: number, signal: AbortSignal, create: () => Promise<{ dataKey: Buffer; envelope: Buffer }>, exhaustedId?: string): Promise<SharedKey> {
    const tag = slotTag(slot);
    const token = randomBytes(9).toString('base64');
    let spent = exhaustedId;
    for (;;) {
      throwIfAborted(signal, 'transit data key');
      const cur = await this.read(tag, slot, limits);
      if (cur && cur.id !== spent) {
        const budget = await this.reserve(slot, cur.id, limits, bytes);
        if (budget) {
          this.counters.adopted++;
          return { ...cur, budget, created: false };
        }
        this.zero(cur.dataKey);
        spent = cur.id;
      }
      const locked = await this.run(() => this.o.redis.set(this.o.keys.transitDataKeyLock(tag), token, 'PX', this.o.lockMs, 'NX'));
      if (locked === 'OK') {
        try {
          // Another replica may have installed a key between our read and the lock.
          const again = await this.read(tag, slot, limits);
          if (again && again.id !== spent) {
            this.zero(again.dataKey);
            continue;
          }
          return await this.install(tag, slot, limits, bytes, await create());
        } finally {
          await this.run(() => this.o.redis.eval(RELEASE, 1, this.o.keys.transitDataKeyLock(tag), token)).catch(() => undefined);
        }
      }
      await this.o.bus.waitFilled(tag, POLL_MS, signal);
    }
  }

  /** Reserve the next block of a key this replica holds; undefined when the key is spent (or gone) fleet-wide. */
  async reserve(slot: DataKeySlot, id: string, limits: UsageLimits, bytes: number): Promise<{ messages: number; bytes: number } | undefined> {
    const block = blockOf(limits, bytes);
    const ok = await this.run(() => this.o.redis.eval(RESERVE, 1, this.o.keys.transitDataKey(slotTag(slot)), id, block.messages, block.bytes, limits.maxMessages, limits.maxBytes));
    this.counters.reservations++;
    if (ok === 1) return block;
    this.counters.exhausted++;
    return undefined;
  }

  /** Drop every shared data key of `keyring` (an invalidation or revocation): the next encrypt makes a new one. */
  async dropKeyring(keyring: string): Promise<number> {
    const index = this.o.keys.transitDataKeyIndex(keyring);
    const members = await this.run(() => this.o.redis.smembers(index));
    for (const tag of members) await this.run(() => this.o.redis.del(this.o.keys.transitDataKey(tag)));
    if (members.length) await this.run(() => this.o.redis.srem(index, ...members));
    return members.length;
  }

  private async install(tag: string, slot: DataKeySlot, limits: UsageLimits, bytes: number, made: { dataKey: Buffer; envelope: Buffer }): Promise<SharedKey> {
    const sk = this.o.sealing.current(slot.keyring);
    const local: SharedKey = { id: '', dataKey: made.dataKey, envelope: made.envelope, ageMs: 0, budget: { messages: 0, bytes: 0 }, created: true };
    if (!sk) return local; // the sealing key went away meanwhile: keep it to ourselves
    const id = randomBytes(12).toString('base64');
    const block = blockOf(limits, bytes);
    const key = this.o.keys.transitDataKey(tag);
    const sealed = sealEntry(sk.key, sk.id, tag, meta(slot), made.dataKey);
    try {
      await this.run(() => this.o.redis.multi().del(key).hset(key, { id, key: sealed, env: made.envelope, m: block.messages, b: block.bytes }).pexpire(key, limits.maxAgeMs).exec());
      const index = this.o.keys.transitDataKeyIndex(slot.keyring);
      await this.run(() => this.o.redis.multi().sadd(index, tag).pexpire(index, Math.max(limits.maxAgeMs, 60_000)).exec());
    } catch {
      return local;
    }
    this.counters.created++;
    this.o.bus.notifyFilled(tag);
    return { ...local, id, budget: block };
  }

  /** The current shared key of a slot, opened (ours to own), or undefined (none, spent, revoked, or foreign). */
  private async read(tag: string, slot: DataKeySlot, limits: UsageLimits): Promise<Omit<SharedKey, 'budget' | 'created'> | undefined> {
    if (this.o.isRevoked(slot.keyring, slot.generation)) return undefined;
    const key = this.o.keys.transitDataKey(tag);
    const res = await this.run(() => this.o.redis.multi().hgetallBuffer(key).pttl(key).exec());
    const h = res?.[0]?.[1] as Record<string, Buffer> | undefined;
    const ttl = Number(res?.[1]?.[1] ?? -2);
    if (!h?.['id'] || !h['key'] || !h['env'] || ttl <= 0) return undefined;
    const hdr = entryHeader(h['key']);
    const sk = hdr ? this.o.sealing.byId(slot.keyring, hdr.sealingKeyId) : undefined;
    const dataKey = sk ? openEntry(sk, tag, meta(slot), h['key']) : undefined;
    if (!dataKey) {
      this.counters.rejected++;
      return undefined;
    }
    return { id: h['id'].toString(), dataKey, envelope: h['env'], ageMs: Math.max(0, limits.maxAgeMs - ttl) };
  }

  private zero(b: Buffer): void {
    b.fill(0);
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await this.o.health.run(this.o.commandTimeoutMs, fn);
    } catch (e) {
      this.counters.redisErrors++;
      throw e;
    }
  }
}

function meta(slot: DataKeySlot): { tenant: string; keyring: string; generation: string } {
  return { tenant: slot.tenant, keyring: slot.keyring, generation: slot.generation };
}

/** The Redis hash tag of a slot: a hash, so key names never carry a tenant or key name. */
function slotTag(slot: DataKeySlot): string {
  return `tdk:${createHash('sha256').update(`${slot.keyName}\0${slot.tenant}\0${slot.keyring}\0${slot.generation}`).digest('base64url')}`;
}

function blockOf(limits: UsageLimits, bytes: number): { messages: number; bytes: number } {
  return { messages: Math.max(1, Math.floor(limits.maxMessages / BLOCKS)), bytes: Math.max(bytes, Math.floor(limits.maxBytes / BLOCKS)) };
}

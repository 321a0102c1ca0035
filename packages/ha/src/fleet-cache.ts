/**
 * The shared half of KeyCache: a sealed L2 in Redis and a fleet-wide single-flight.
 *
 * On an L1 miss: read the L2 entry; on a miss there too, take a short Redis lock for the cache key
 * (SET NX PX, renewed while the holder works). The holder loads (one KMS call for the whole fleet), writes
 * the sealed entry and announces it; every other replica waits for the announcement (or polls), then reads
 * L2. If the holder dies, its lock expires after flightLockMs and a waiter takes over. Everything is bounded
 * by the caller's deadline, and any Redis failure degrades to a plain load: Redis makes the fleet faster,
 * never more fragile.
 */
import { randomBytes } from 'node:crypto';
import { throwIfAborted } from '@kekbroker/core';
import type { KeyCacheEntryMeta, LoadFn, SharedCache } from '@kekbroker/cache';
import type { FleetBus } from './bus';
import type { RedisKeys } from './keys';
import type { RedisClient, RedisHealth } from './redis-client';
import { entryHeader, openEntry, sealEntry } from './sealed-entry';
import type { SealingKeys } from './sealing-keys';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
/** A waiter re-reads L2 at least this often even without an announcement (a lost message, a dead holder). */
const POLL_MS = 100;

export interface FleetCacheOptions {
  redis: RedisClient;
  keys: RedisKeys;
  health: RedisHealth;
  bus: FleetBus;
  sealing: SealingKeys;
  ttlMs: number;
  lockMs: number;
  commandTimeoutMs: number;
}

export class FleetCache implements SharedCache {
  readonly counters = { l2Reads: 0, l2Hits: 0, l2Rejected: 0, l2Writes: 0, flightLeads: 0, flightWaits: 0, flightTakeovers: 0, redisErrors: 0 };

  constructor(private readonly o: FleetCacheOptions) {}

  available(keyring: string): boolean {
    return this.o.health.up && this.o.sealing.current(keyring) !== undefined;
  }

  async getOrLoad(key: string, meta: KeyCacheEntryMeta, signal: AbortSignal, load: LoadFn): Promise<{ plaintext: Buffer; source: 'l2' | 'load' }> {
    const first = await this.read(key, meta);
    if (first) return { plaintext: first, source: 'l2' };
    const token = randomBytes(9).toString('base64');
    let waited = false;
    for (;;) {
      throwIfAborted(signal, 'unwrap');
      if (!this.o.health.up) return { plaintext: await load(), source: 'load' };
      let locked: string | null;
      try {
        locked = await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.set(this.o.keys.lock(key), token, 'PX', this.o.lockMs, 'NX'));
      } catch {
        this.counters.redisErrors++;
        return { plaintext: await load(), source: 'load' };
      }
      if (locked === 'OK') {
        // The previous holder may have written L2 and released the lock since our last read.
        const raced = await this.read(key, meta);
        if (raced) {
          void this.release(key, token);
          return { plaintext: raced, source: 'l2' };
        }
        if (waited) this.counters.flightTakeovers++;
        return { plaintext: await this.leadLoad(key, meta, token, load), source: 'load' };
      }
      if (!waited) this.counters.flightWaits++;
      waited = true;
      await this.o.bus.waitFilled(key, POLL_MS, signal);
      throwIfAborted(signal, 'unwrap');
      const hit = await this.read(key, meta);
      if (hit) return { plaintext: hit, source: 'l2' };
    }
  }

  /** Seal a copy now; write it in the background. */
  put(key: string, meta: KeyCacheEntryMeta, plaintext: Uint8Array): void {
    const sealed = this.seal(key, meta, plaintext);
    if (sealed) void this.write(key, sealed).catch(() => undefined);
  }

  private async leadLoad(key: string, meta: KeyCacheEntryMeta, token: string, load: LoadFn): Promise<Buffer> {
    this.counters.flightLeads++;
    const renew = setInterval(() => {
      void this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.eval(RENEW, 1, this.o.keys.lock(key), token, String(this.o.lockMs))).catch(() => undefined);
    }, Math.max(50, Math.floor(this.o.lockMs / 3)));
    try {
      const plaintext = await load();
      const sealed = this.seal(key, meta, plaintext);
      if (sealed) {
        try {
          await this.write(key, sealed);
          this.o.bus.notifyFilled(key);
        } catch {
          /* waiters will take over the lock and load themselves */
        }
      }
      return plaintext;
    } finally {
      clearInterval(renew);
      void this.release(key, token);
    }
  }

  private seal(key: string, meta: KeyCacheEntryMeta, plaintext: Uint8Array): Buffer | undefined {
    const sk = this.o.sealing.current(meta.keyring);
    return sk ? sealEntry(sk.key, sk.id, key, meta, plaintext) : undefined;
  }

  private async write(key: string, sealed: Buffer): Promise<void> {
    await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.set(this.o.keys.entry(key), sealed, 'PX', this.o.ttlMs));
    this.counters.l2Writes++;
  }

  private async release(key: string, token: string): Promise<void> {
    await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.eval(RELEASE, 1, this.o.keys.lock(key), token)).catch(() => undefined);
  }

  /** The unsealed L2 value (ours to own), or undefined on a miss, a foreign/tampered entry or a Redis failure. */
  private async read(key: string, meta: KeyCacheEntryMeta): Promise<Buffer | undefined> {
    if (!this.o.health.up) return undefined;
    this.counters.l2Reads++;
    let raw: Buffer | null;
    try {
      raw = await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.getBuffer(this.o.keys.entry(key)));
    } catch {
      this.counters.redisErrors++;
      return undefined;
    }
    if (!raw) return undefined;
    const h = entryHeader(raw);
    const sk = h ? this.o.sealing.byId(meta.keyring, h.sealingKeyId) : undefined;
    const opened = sk ? openEntry(sk, key, meta, raw) : undefined;
    if (!opened) {
      // Sealed under a key we cannot open (yet), for another tenant/keyring, or tampered: a miss, never an answer.
      this.counters.l2Rejected++;
      return undefined;
    }
    this.counters.l2Hits++;
    return opened;
  }
}

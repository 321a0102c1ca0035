/**
 * Cache-sealing keys, one current key per keyring. The leader generates a key (32 random bytes), has the
 * keyring wrap it like any other key (multi-wrap under every provider, tenant CACHE_SEALING_TENANT) and stores
 * the envelope in a Redis hash; every replica unwraps it once (one KMS call) and keeps it in memory. Rotation
 * (on schedule, or on demand) adds a new current key; older ones stay in the hash until their entries have
 * expired, and are dropped from memory (zeroed) when they leave the hash.
 *
 * Hash `<prefix>{ha}:sealing:<keyring>`: current -> id, k:<id> -> envelope (base64), t:<id> -> created ms.
 * The leader's writes are fenced: a Lua script checks the lease token in the same slot before writing.
 */
import { randomBytes } from 'node:crypto';
import { CACHE_SEALING_TENANT } from '@kekbroker/cache';
import { deadlineSignal, zeroize } from '@kekbroker/core';
import type { RedisKeys } from './keys';
import type { RedisClient, RedisHealth } from './redis-client';

/** What SealingKeys needs from a keyring (structural: packages/keyring's Keyring fits). */
export interface SealingKeyring {
  readonly name: string;
  readonly keyId: string | undefined;
  wrap(tenant: string, plaintext: Uint8Array, signal: AbortSignal): Promise<{ ciphertext: Buffer }>;
  unwrap(tenant: string, ciphertext: Uint8Array, signal: AbortSignal): Promise<{ plaintext: Buffer }>;
}

const FENCED_WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'k:' .. ARGV[2], ARGV[3], 't:' .. ARGV[2], ARGV[4], 'current', ARGV[2])
for i = 5, #ARGV do redis.call('HDEL', KEYS[2], 'k:' .. ARGV[i], 't:' .. ARGV[i]) end
return 1`;

interface Ring {
  keyring: SealingKeyring;
  currentId: string | undefined;
  currentCreated: number;
  keys: Map<string, Buffer>;
  lastError: string;
}

export interface SealingKeysOptions {
  redis: RedisClient;
  keys: RedisKeys;
  health: RedisHealth;
  commandTimeoutMs: number;
  /** Keys older than rotation + retain are deleted by the leader (retain = the L2 TTL). */
  retainMs: number;
  log: { warn(o: object, m: string): void; info(o: object, m: string): void };
}

export class SealingKeys {
  private readonly rings = new Map<string, Ring>();
  /** Number of sealing-key unwraps (KMS calls) this replica made. */
  unwraps = 0;

  constructor(private readonly o: SealingKeysOptions) {}

  /** Keyrings are added once built (they take the KeyCache that this object serves). */
  add(k: SealingKeyring): void {
    this.rings.set(k.name, { keyring: k, currentId: undefined, currentCreated: 0, keys: new Map(), lastError: 'not loaded yet' });
  }

  /** Re-read one keyring now (after a rotation message). */
  async refreshOne(keyring: string): Promise<void> {
    const r = this.rings.get(keyring);
    if (r) await this.refresh(r);
  }

  /** The key new L2 entries are sealed with, or undefined (this keyring then runs on L1 alone). */
  current(keyring: string): { id: string; key: Buffer } | undefined {
    const r = this.rings.get(keyring);
    const key = r?.currentId ? r.keys.get(r.currentId) : undefined;
    return key && r?.currentId ? { id: r.currentId, key } : undefined;
  }

  /** An open key by id (entries sealed before a rotation), or undefined. */
  byId(keyring: string, id: string): Buffer | undefined {
    return this.rings.get(keyring)?.keys.get(id);
  }

  status(): Array<{ keyring: string; open: boolean; currentId: string | undefined; reason: string }> {
    return [...this.rings.values()].map((r) => ({ keyring: r.keyring.name, open: this.current(r.keyring.name) !== undefined, currentId: r.currentId, reason: r.lastError }));
  }

  /** Re-read the hash of every keyring; unwrap keys not yet open, forget keys no longer there. */
  async refreshAll(): Promise<void> {
    await Promise.all([...this.rings.values()].map((r) => this.refresh(r)));
  }

  /** One refresh per keyring at a time: concurrent triggers (a message, the timer, a reconnect) share it. */
  private readonly refreshing = new Map<string, Promise<void>>();

  private refresh(r: Ring): Promise<void> {
    const running = this.refreshing.get(r.keyring.name);
    if (running) return running;
    const p = this.doRefresh(r).finally(() => this.refreshing.delete(r.keyring.name));
    this.refreshing.set(r.keyring.name, p);
    return p;
  }

  private async doRefresh(r: Ring): Promise<void> {
    let h: Record<string, string>;
    try {
      h = await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.hgetall(this.o.keys.sealing(r.keyring.name)));
    } catch (e) {
      r.lastError = `redis: ${(e as Error).message}`;
      return;
    }
    const ids = Object.keys(h).filter((f) => f.startsWith('k:')).map((f) => f.slice(2));
    for (const [id, key] of r.keys) {
      if (!ids.includes(id)) {
        zeroize(key);
        r.keys.delete(id);
      }
    }
    for (const id of ids) {
      if (r.keys.has(id)) continue;
      try {
        this.unwraps++;
        const { plaintext } = await r.keyring.unwrap(CACHE_SEALING_TENANT, Buffer.from(h[`k:${id}`] as string, 'base64'), deadlineSignal(5000));
        r.keys.set(id, plaintext);
      } catch (e) {
        r.lastError = `cannot unwrap sealing key ${id} with keyring ${r.keyring.name}: ${(e as Error).message}`;
        this.o.log.warn({ keyring: r.keyring.name, sealingKeyId: id, err: e }, 'cache-sealing key cannot be opened: this replica runs this keyring on L1 alone');
      }
    }
    r.currentId = h['current'];
    r.currentCreated = Number(h[`t:${r.currentId ?? ''}`] ?? 0);
    if (this.current(r.keyring.name)) r.lastError = 'ok';
    else if (!r.currentId) r.lastError = 'no sealing key in Redis yet (the leader creates it)';
  }

  /**
   * Leader job: create the first key, or rotate when the current one is older than `rotationMs` (or `force`).
   * `leaseToken` fences the write. Returns the keyrings rotated.
   */
  async rotateIfDue(leaseToken: string, rotationMs: number, force = false): Promise<string[]> {
    const rotated: string[] = [];
    for (const r of this.rings.values()) {
      if (!r.keyring.keyId) continue; // cannot wrap before the keyring is ready
      // Also rotate when the current key cannot be opened here (e.g. the keyring's providers changed): the
      // leader can always wrap a new one, and until then the whole fleet would run on L1 alone.
      const openHere = r.currentId !== undefined && r.keys.has(r.currentId);
      if (!force && openHere && Date.now() - r.currentCreated < rotationMs) continue;
      const key = randomBytes(32);
      try {
        const { ciphertext } = await r.keyring.wrap(CACHE_SEALING_TENANT, key, deadlineSignal(5000));
        const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
        const h = await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.hgetall(this.o.keys.sealing(r.keyring.name)));
        const expired = Object.keys(h).filter((f) => f.startsWith('t:') && Date.now() - Number(h[f]) > rotationMs + this.o.retainMs).map((f) => f.slice(2));
        const ok = await this.o.health.run(this.o.commandTimeoutMs, () =>
          this.o.redis.eval(FENCED_WRITE, 2, this.o.keys.leader, this.o.keys.sealing(r.keyring.name), leaseToken, id, ciphertext.toString('base64'), String(Date.now()), ...expired));
        if (ok !== 1) {
          this.o.log.warn({ keyring: r.keyring.name }, 'sealing-key rotation refused: this replica no longer holds the leader lease');
          continue;
        }
        r.keys.set(id, key);
        r.currentId = id;
        r.currentCreated = Date.now();
        r.lastError = 'ok';
        rotated.push(r.keyring.name);
        this.o.log.info({ keyring: r.keyring.name, sealingKeyId: id, dropped: expired.length }, 'cache-sealing key rotated');
      } catch (e) {
        zeroize(key);
        this.o.log.warn({ keyring: r.keyring.name, err: e }, 'cache-sealing key rotation failed; will retry');
      }
    }
    return rotated;
  }

  close(): void {
    for (const r of this.rings.values()) {
      for (const k of r.keys.values()) zeroize(k);
      r.keys.clear();
    }
  }
}

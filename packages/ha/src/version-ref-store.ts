/**
 * Keyring state shared through Redis: the last known provider version refs of each keyring (key_id
 * continuity when a provider is down at start), with the broker's local state file as fallback.
 * Public data only (key version names). The interface is packages/keyring's VersionRefStore (issue 8),
 * repeated here verbatim so this package does not depend on the keyring package.
 */
import type { RedisKeys } from './keys';
import type { RedisClient, RedisHealth } from './redis-client';

/** The last known current version ref of every provider of a keyring, so key_id survives a provider outage at start. */
export interface VersionRefStore {
  /** providerId -> currentVersionRef, or undefined if never saved. Must not throw for "absent". */
  load(keyring: string): Promise<Record<string, string> | undefined>;
  /** Persist after every successful describe()/rotate() of all providers. Best effort: errors are logged by the caller. */
  save(keyring: string, refs: Record<string, string>): Promise<void>;
}

export class RedisVersionRefStore implements VersionRefStore {
  constructor(private readonly redis: RedisClient, private readonly keys: RedisKeys, private readonly health: RedisHealth, private readonly timeoutMs: number) {}

  async load(keyring: string): Promise<Record<string, string> | undefined> {
    const h = await this.health.run(this.timeoutMs, () => this.redis.hgetall(this.keys.versionRefs(keyring)));
    return Object.keys(h).length ? h : undefined;
  }

  async save(keyring: string, refs: Record<string, string>): Promise<void> {
    const key = this.keys.versionRefs(keyring);
    await this.health.run(this.timeoutMs, () => this.redis.multi().del(key).hset(key, refs).exec());
  }
}

/** Redis first (shared by the fleet), the local file when Redis is down or empty; saves go to both. */
export class CompositeVersionRefStore implements VersionRefStore {
  constructor(private readonly primary: VersionRefStore, private readonly fallback: VersionRefStore) {}

  async load(keyring: string): Promise<Record<string, string> | undefined> {
    const fromRedis = await this.primary.load(keyring).catch(() => undefined);
    return fromRedis ?? this.fallback.load(keyring);
  }

  async save(keyring: string, refs: Record<string, string>): Promise<void> {
    const results = await Promise.allSettled([this.primary.save(keyring, refs), this.fallback.save(keyring, refs)]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed && results.every((r) => r.status === 'rejected')) throw (failed).reason;
  }
}

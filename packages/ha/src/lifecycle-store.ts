/**
 * Keyring lifecycle state shared by the fleet: when each generation (key_id) was first seen, the last
 * scheduled or admin rotation, and retired generations. One Redis hash per keyring of plain string fields
 * (public data: key_ids, times, admin names and reasons; never key material). The hash carries the `{ha}`
 * tag so the fenced write (one Lua script that checks the leader lease) works on Redis Cluster too.
 *
 * The interface is the broker's LifecycleStore (services/broker/src/lifecycle/store.ts), repeated here so this
 * package does not depend on the broker.
 */
import type { RedisKeys } from './keys';
import type { RedisClient, RedisHealth } from './redis-client';

/**
 * Write a field only while the caller holds the leader lease (KEYS[2] == ARGV[1]; an empty token skips that
 * check, for admin requests any replica may serve) and the field still holds what the caller read (ARGV[3];
 * '' = absent). Two leaders of different terms can never both claim a job.
 */
const FENCED_CAS = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if (cur or '') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
return 1`;

export type FencedWrite = 'written' | 'changed' | 'not-leader';

export class RedisLifecycleStore {
  constructor(private readonly redis: RedisClient, private readonly keys: RedisKeys, private readonly health: RedisHealth, private readonly timeoutMs: number) {}

  async load(keyring: string): Promise<Record<string, string>> {
    return this.health.run(this.timeoutMs, () => this.redis.hgetall(this.keys.lifecycle(keyring)));
  }

  async setIfAbsent(keyring: string, field: string, value: string): Promise<void> {
    await this.health.run(this.timeoutMs, () => this.redis.hsetnx(this.keys.lifecycle(keyring), field, value));
  }

  async set(keyring: string, field: string, value: string): Promise<void> {
    await this.health.run(this.timeoutMs, () => this.redis.hset(this.keys.lifecycle(keyring), field, value));
  }

  /** Compare-and-set `field` from `expect` ('' = absent) to `value`, only under the lease `token` (unless ''). */
  async setFenced(keyring: string, field: string, expect: string, value: string, token: string): Promise<FencedWrite> {
    const r = Number(await this.health.run(this.timeoutMs, () => this.redis.eval(FENCED_CAS, 2, this.keys.lifecycle(keyring), this.keys.leader, token, field, expect, value)));
    return r === 1 ? 'written' : r === 0 ? 'changed' : 'not-leader';
  }
}

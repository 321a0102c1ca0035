/**
 * Which replicas are alive: each replica writes a small record (`<prefix>{ha}:replicas`, one field per
 * replica) every heartbeat, and the admin status lists the records seen recently. Public data only.
 */
import type { RedisKeys } from './keys';
import type { RedisClient, RedisHealth } from './redis-client';

export interface ReplicaRecord {
  replica: string;
  leader: boolean;
  epoch: number;
  /** When the replica last wrote its record (ISO). */
  seenAt: string;
  startedAt: string;
  version: string;
}

/** A record older than this is a replica that is gone (or cut off from Redis). */
export const PRESENCE_STALE_MS = 10_000;
/** Records older than this are deleted by whoever lists them. */
const FORGET_MS = 3_600_000;

export class Presence {
  private readonly startedAt = new Date().toISOString();

  constructor(private readonly redis: RedisClient, private readonly keys: RedisKeys, private readonly health: RedisHealth, private readonly timeoutMs: number, private readonly version: string) {}

  async beat(replica: string, leader: boolean, epoch: number): Promise<void> {
    const rec: ReplicaRecord = { replica, leader, epoch, seenAt: new Date().toISOString(), startedAt: this.startedAt, version: this.version };
    await this.health.run(this.timeoutMs, () => this.redis.hset(this.keys.replicas, replica, JSON.stringify(rec)));
  }

  /** Replicas seen within PRESENCE_STALE_MS, with `alive: false` for older ones still remembered. */
  async list(now = Date.now()): Promise<Array<ReplicaRecord & { alive: boolean }>> {
    const all = await this.health.run(this.timeoutMs, () => this.redis.hgetall(this.keys.replicas));
    const out: Array<ReplicaRecord & { alive: boolean }> = [];
    const forget: string[] = [];
    for (const [id, raw] of Object.entries(all)) {
      let rec: ReplicaRecord;
      try {
        rec = JSON.parse(raw) as ReplicaRecord;
      } catch {
        continue;
      }
      const age = now - Date.parse(rec.seenAt);
      if (age > FORGET_MS) forget.push(id);
      else out.push({ ...rec, alive: age <= PRESENCE_STALE_MS });
    }
    if (forget.length) await this.health.run(this.timeoutMs, () => this.redis.hdel(this.keys.replicas, ...forget)).catch(() => undefined);
    return out.sort((a, b) => a.replica.localeCompare(b.replica));
  }

  async remove(replica: string): Promise<void> {
    await this.health.run(this.timeoutMs, () => this.redis.hdel(this.keys.replicas, replica));
  }
}

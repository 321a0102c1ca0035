/**
 * Leader election with a Redis lease and an epoch (fencing token).
 *
 * Acquire (one Lua script, atomic): if no lease exists, INCR the epoch and SET the lease to
 * "<replicaId>:<epoch>" with PX ttl. Renew every renewEveryMs with a compare-and-PEXPIRE. The leader counts
 * its lease from the moment it SENT the last successful renewal, and steps down on its own once
 * `ttl - safety` has passed without one (Redis down, process paused): its jobs stop before anyone else
 * can take the lease. Every singleton job carries `token` and writes only through a script that checks it.
 *
 * Leadership decides only who runs singleton jobs and whom shims prefer: every replica serves the data plane.
 */
import { EventEmitter } from 'node:events';
import type { RedisKeys } from './keys';
import type { RedisClient, RedisHealth } from './redis-client';

const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local e = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. e, 'PX', ARGV[2])
return e`;
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export interface LeaderLeaseOptions {
  redis: RedisClient;
  keys: RedisKeys;
  health: RedisHealth;
  replicaId: string;
  ttlMs: number;
  renewEveryMs: number;
  commandTimeoutMs: number;
}

export interface LeaderState {
  leader: boolean;
  epoch: number;
  /** The lease holder as last seen in Redis ("<replicaId>:<epoch>"), '' when none or unknown. */
  holder: string;
}

/** Emits 'change' (LeaderState) when this replica gains or loses the lease. */
export class LeaderLease extends EventEmitter {
  private timer: NodeJS.Timeout | undefined;
  private token: string | undefined;
  private validUntil = 0;
  private holdOffUntil = 0;
  private stopped = false;
  epoch = 0;
  holder = '';
  transitions = 0;

  constructor(private readonly o: LeaderLeaseOptions) {
    super();
  }

  get isLeader(): boolean {
    return this.token !== undefined && performance.now() < this.validUntil;
  }

  /** The fencing token of the current term, for singleton jobs; undefined when not leader. */
  get leaseToken(): string | undefined {
    return this.isLeader ? this.token : undefined;
  }

  state(): LeaderState {
    return { leader: this.isLeader, epoch: this.epoch, holder: this.holder };
  }

  start(): void {
    void this.tick();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const sentAt = performance.now();
    try {
      if (this.token) {
        const ok = await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.eval(RENEW, 1, this.o.keys.leader, this.token as string, String(this.o.ttlMs)));
        if (ok === 1) this.validUntil = sentAt + this.o.ttlMs - this.safetyMs();
        else this.lose('lease taken or expired');
      } else if (performance.now() >= this.holdOffUntil) {
        const e = Number(await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.eval(ACQUIRE, 2, this.o.keys.leader, this.o.keys.epoch, this.o.replicaId, String(this.o.ttlMs))));
        if (e > 0) {
          this.token = `${this.o.replicaId}:${e}`;
          this.epoch = e;
          this.holder = this.token;
          this.validUntil = sentAt + this.o.ttlMs - this.safetyMs();
          this.transitions++;
          this.arm();
          this.emit('change', this.state());
        }
      }
      if (!this.token) {
        this.holder = (await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.get(this.o.keys.leader))) ?? '';
        const e = Number(this.holder.split(':').pop());
        if (e > this.epoch) this.epoch = e;
      }
    } catch {
      // Redis unreachable: a leader keeps its term only until validUntil (the step-down timer ends it).
    }
    this.schedule(this.token ? this.o.renewEveryMs : Math.min(this.o.renewEveryMs, 500));
  }

  /** The leader gives up this long before the lease could expire in Redis (clock rate, GC, scheduling). */
  private safetyMs(): number {
    return Math.max(200, Math.floor(this.o.ttlMs / 5));
  }

  private stepDownTimer: NodeJS.Timeout | undefined;
  /** Lose leadership locally at validUntil unless a renewal pushes it further. */
  private arm(): void {
    clearTimeout(this.stepDownTimer);
    const check = (): void => {
      if (!this.token) return;
      const left = this.validUntil - performance.now();
      if (left <= 0) this.lose('could not renew the lease in time');
      else {
        this.stepDownTimer = setTimeout(check, left);
        this.stepDownTimer.unref();
      }
    };
    check();
  }

  private lose(why: string): void {
    if (!this.token) return;
    this.token = undefined;
    this.validUntil = 0;
    this.transitions++;
    clearTimeout(this.stepDownTimer);
    this.emit('change', { ...this.state(), why });
  }

  /** Give the lease up (admin step-down, shutdown) and stay out of the race for `holdOffMs`. */
  async stepDown(holdOffMs = this.o.ttlMs): Promise<boolean> {
    const token = this.token;
    if (!token) return false;
    this.holdOffUntil = performance.now() + holdOffMs;
    this.lose('stepped down');
    await this.o.health.run(this.o.commandTimeoutMs, () => this.o.redis.eval(RELEASE, 1, this.o.keys.leader, token)).catch(() => undefined);
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.stepDown(0);
  }
}

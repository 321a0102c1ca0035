/**
 * Everything a replica shares with its fleet through Redis, assembled: connections, health, the sealed L2
 * and fleet-wide single-flight (FleetCache, plugged into KeyCache), the cache-sealing keys, the invalidation
 * bus, the leader lease and its singleton jobs (sealing-key rotation). Built only when `redis` is configured.
 */
import os from 'node:os';
import type { DefaultKeyCache, Invalidation } from '@kekbroker/cache';
import { FleetBus, type BusMessage } from './bus';
import { FleetCache } from './fleet-cache';
import { RedisKeys } from './keys';
import { LeaderLease } from './leader-lease';
import { createRedisClient, RedisHealth, type RedisClient, type RedisConfig } from './redis-client';
import { SealingKeys, type SealingKeyring } from './sealing-keys';
import { RedisLifecycleStore } from './lifecycle-store';
import { Presence } from './presence';
import { RedisUsageCounters } from './usage-counters';
import { RedisVersionRefStore } from './version-ref-store';

export interface HaConfig {
  replicaId?: string;
  /** This replica's software version, shown in the fleet's replica list. */
  version?: string;
  leaseTtlMs: number;
  renewEveryMs: number;
  sealingKeyRotationSeconds: number;
  flightLockMs: number;
}

export interface FleetLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
}

/** Sealing keys and revocations are re-read this often even without a message (a missed publish). */
const SYNC_MS = 10_000;

export class Fleet {
  readonly replicaId: string;
  readonly keys: RedisKeys;
  readonly health = new RedisHealth();
  readonly sealing: SealingKeys;
  readonly bus: FleetBus;
  readonly cache: FleetCache;
  readonly lease: LeaderLease;
  readonly versionRefs: RedisVersionRefStore;
  readonly lifecycle: RedisLifecycleStore;
  readonly usage: RedisUsageCounters;
  readonly presence: Presence;
  /** Set by the broker: another replica rotated or retired something in this keyring. */
  onKeyringChange: (keyring: string) => void = () => undefined;
  /** Set by the broker: Redis is reachable (again); re-read what may have changed meanwhile. */
  onReady: () => void = () => undefined;
  private keyCache: DefaultKeyCache | undefined;
  private jobTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private jobsRunning = false;

  private constructor(
    private readonly cmd: RedisClient,
    private readonly sub: RedisClient,
    private readonly redisCfg: RedisConfig,
    private readonly ha: HaConfig,
    cacheTtlMs: number,
    private readonly log: FleetLog,
  ) {
    this.replicaId = ha.replicaId ?? `${os.hostname()}-${process.pid}`;
    this.keys = new RedisKeys(redisCfg.keyPrefix);
    const t = redisCfg.commandTimeoutMs;
    this.sealing = new SealingKeys({ redis: cmd, keys: this.keys, health: this.health, commandTimeoutMs: t, retainMs: cacheTtlMs, log });
    this.bus = new FleetBus(cmd, sub, this.keys, this.health, t);
    this.cache = new FleetCache({ redis: cmd, keys: this.keys, health: this.health, bus: this.bus, sealing: this.sealing, ttlMs: cacheTtlMs, lockMs: ha.flightLockMs, commandTimeoutMs: t });
    this.lease = new LeaderLease({ redis: cmd, keys: this.keys, health: this.health, replicaId: this.replicaId, ttlMs: ha.leaseTtlMs, renewEveryMs: ha.renewEveryMs, commandTimeoutMs: t });
    this.versionRefs = new RedisVersionRefStore(cmd, this.keys, this.health, t);
    this.lifecycle = new RedisLifecycleStore(cmd, this.keys, this.health, t);
    this.usage = new RedisUsageCounters(cmd, this.keys, this.health, t);
    this.presence = new Presence(cmd, this.keys, this.health, t, ha.version ?? 'unknown');
  }

  /** Create the connections (they connect in the background: a Redis down at start is not fatal). */
  static async connect(redis: RedisConfig, ha: HaConfig, cacheTtlMs: number, log: FleetLog): Promise<Fleet> {
    const cmd = await createRedisClient(redis);
    const sub = await createRedisClient(redis, true);
    const f = new Fleet(cmd, sub, redis, ha, cacheTtlMs, log);
    let wasUp = true;
    const onError = (e: Error): void => {
      if (wasUp) log.warn({ err: e.message, mode: redis.mode, nodes: redis.nodes }, 'redis unreachable: serving from L1 and the KMS until it is back');
      wasUp = false;
    };
    cmd.on('error', onError);
    sub.on('error', () => undefined);
    cmd.on('ready', () => {
      if (!wasUp) log.info({ mode: redis.mode }, 'redis reachable again');
      wasUp = true;
      void f.sync();
      f.onReady();
    });
    // The command client has no offline queue: a command sent before the first connection fails at once. Wait
    // (at most connectTimeoutMs) so that a reachable Redis serves the start-up reads, the keyrings' last known
    // version refs above all; a dead Redis costs the start no more than that.
    await readyWithin(cmd, redis.connectTimeoutMs);
    return f;
  }

  /** The command connection is up (Fleet.connect waited up to connectTimeoutMs for it). */
  get ready(): boolean {
    return this.cmd.status === 'ready';
  }

  /** Wire the keyrings and the KeyCache in, then start the bus, the lease and the jobs. */
  async start(keyrings: Iterable<SealingKeyring>, keyCache: DefaultKeyCache): Promise<void> {
    this.keyCache = keyCache;
    for (const k of keyrings) this.sealing.add(k);
    await this.bus.start((m) => this.onMessage(m));
    this.lease.on('change', (s: { leader: boolean; epoch: number; why?: string }) => {
      this.log.warn({ replica: this.replicaId, leader: s.leader, epoch: s.epoch, why: s.why }, s.leader ? 'became leader' : 'lost leadership');
      if (s.leader) void this.runJobs();
    });
    this.lease.start();
    await this.sync();
    this.syncTimer = setInterval(() => void this.sync(), SYNC_MS);
    this.syncTimer.unref();
    this.jobTimer = setInterval(() => {
      void this.runJobs();
      void this.presence.beat(this.replicaId, this.lease.isLeader, this.lease.epoch).catch(() => undefined);
    }, this.ha.renewEveryMs);
    void this.presence.beat(this.replicaId, this.lease.isLeader, this.lease.epoch).catch(() => undefined);
    this.jobTimer.unref();
  }

  /** Leader only: create or rotate due sealing keys; fenced by the lease token. */
  private async runJobs(force = false): Promise<string[]> {
    const token = this.lease.leaseToken;
    // Never two runs at once (the timer and a lease change can coincide): two first keys would be made.
    if (!token || this.stopped || this.jobsRunning) return [];
    this.jobsRunning = true;
    try {
      // Re-read first: after a FLUSHALL or a new empty Redis the hash is gone and a new key must be made.
      await this.sealing.refreshAll();
      const rotated = await this.sealing.rotateIfDue(token, this.ha.sealingKeyRotationSeconds * 1000, force);
      for (const keyring of rotated) await this.bus.publish({ type: 'sealing', keyring }).catch(() => undefined);
      return rotated;
    } finally {
      this.jobsRunning = false;
    }
  }

  /** Admin: rotate every keyring's sealing key now (leader only). */
  async rotateSealingKeys(): Promise<string[]> {
    if (!this.lease.isLeader) throw new Error('not the leader: send sealing-key rotation to the leader replica');
    return this.runJobs(true);
  }

  /** Publish an invalidation to the fleet and apply it here at once (Redis down: here only, and say so). */
  async invalidate(inv: Invalidation): Promise<{ local: number; published: boolean }> {
    const local = this.keyCache?.invalidate(inv) ?? 0;
    const published = await this.bus.publish({ type: 'invalidate', ...inv }).then(() => true, () => false);
    return { local, published };
  }

  private onMessage(m: BusMessage): void {
    if (m.type === 'sealing') void this.sealing.refreshOne(m.keyring);
    else if (m.type === 'invalidate') this.keyCache?.invalidate(m);
    else if (m.type === 'keyring') this.onKeyringChange(m.keyring);
  }

  private async sync(): Promise<void> {
    if (this.stopped) return;
    await this.sealing.refreshAll();
    try {
      for (const r of await this.bus.revoked()) {
        const i = r.lastIndexOf('/');
        const keyring = r.slice(0, i);
        const generation = r.slice(i + 1);
        if (!this.keyCache?.isRevoked(keyring, generation)) this.keyCache?.invalidate({ keyring, generation, revoke: true });
      }
    } catch {
      /* Redis down: the next sync retries */
    }
  }

  get mode(): string {
    return this.redisCfg.mode;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.jobTimer);
    clearInterval(this.syncTimer);
    await this.lease.stop();
    await this.presence.remove(this.replicaId).catch(() => undefined);
    this.sealing.close();
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}

function readyWithin(client: RedisClient, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      client.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    client.once('ready', done);
  });
}

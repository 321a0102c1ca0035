/**
 * What a drill scenario faults, and how the report measures its failover and recovery:
 *  - provider-outage / -latency / -throttle: one provider of the keyring, through its fault hook (this replica
 *    only); failover = another provider acts as active; recovery = the configured active acts again, healthy;
 *  - broker-failover: this replica (the leader) steps down and stays out of the race for the drill's duration;
 *    failover = another replica holds the lease; the canary proves this replica serves throughout;
 *  - redis-outage: every Redis command of this replica fails for the duration (its connection stays open);
 *    the canary proves the data plane runs on L1 and the KMS; recovery = Redis answers again.
 */
import type { Fleet } from '@kekbroker/ha';
import type { DrillFault, FaultHookProvider } from './fault-hook';

export interface FaultSnapshot {
  /** The lease holder as this replica sees it ("<replica>:<epoch>"), '' when none or unknown. */
  leader: string;
  /** null without Redis. */
  redisUp: boolean | null;
}

export interface DrillTarget {
  /** What the fault hits: a provider id, "leader" or "redis". */
  readonly name: string;
  inject(): Promise<void>;
  lift(): Promise<void>;
  /** The scenario takes leadership from this replica: do not abort the drill when it goes. */
  readonly takesLeadership: boolean;
}

export class ProviderFaultTarget implements DrillTarget {
  readonly takesLeadership = false;
  constructor(private readonly hook: FaultHookProvider, private readonly fault: DrillFault) {}
  get name(): string {
    return this.hook.id;
  }
  async inject(): Promise<void> {
    this.hook.set(this.fault);
  }
  async lift(): Promise<void> {
    this.hook.set(undefined);
  }
}

export class LeaderStepDownTarget implements DrillTarget {
  readonly name = 'leader';
  readonly takesLeadership = true;
  constructor(private readonly fleet: Fleet, private readonly holdOffMs: number) {}
  async inject(): Promise<void> {
    await this.fleet.lease.stepDown(this.holdOffMs);
  }
  async lift(): Promise<void> {
    /* leadership settles by itself: this replica may take the lease again when it is free */
  }
}

export class RedisOutageTarget implements DrillTarget {
  readonly name = 'redis';
  readonly takesLeadership = true;
  constructor(private readonly fleet: Fleet) {}
  async inject(): Promise<void> {
    this.fleet.health.simulatedOutage = true;
  }
  async lift(): Promise<void> {
    this.fleet.health.simulatedOutage = false;
  }
}

export function faultSnapshot(fleet: Fleet | undefined, replicaId: string): FaultSnapshot {
  return { leader: fleet ? fleet.lease.holder : `${replicaId}:0`, redisUp: fleet ? fleet.health.up : null };
}

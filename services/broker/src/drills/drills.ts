/**
 * The drill runner: starts a drill on the leader only (a singleton job), refuses one that cannot run here or
 * would cause a real outage, keeps the newest reports, and aborts a drill whose replica loses the lease (except
 * the scenarios that take leadership on purpose).
 */
import { KekError } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import { Drill, DrillRefused, KEEP_REPORTS, type DrillDeps, type DrillReport, type DrillSpec } from './drill';
import type { DrillFault } from './fault-hook';
import { LeaderStepDownTarget, ProviderFaultTarget, RedisOutageTarget, type DrillTarget } from './targets';

export { DrillRefused, SCENARIOS, actingActive, type DrillDeps, type DrillReport, type DrillSpec, type Scenario, type Transition } from './drill';

export class DrillRunner {
  private readonly drills: Drill[] = [];

  constructor(private readonly deps: DrillDeps) {
    // Fenced by the lease: a replica that loses leadership (step-down, Redis partition) lifts its drill's fault.
    deps.leadership.events.on('change', () => {
      if (deps.leadership.isLeader()) return;
      for (const d of this.drills) {
        if (d.report().state !== 'running' || d.target.takesLeadership) continue;
        deps.log.warn({ drill: d.id, replica: deps.leadership.replicaId }, 'drill aborted: this replica lost the leader lease');
        d.abort();
      }
    });
  }

  get running(): boolean {
    return this.drills.some((d) => d.report().state === 'running');
  }

  /** Validate and start; throws KekError (invalid-input, not-found, permission-denied) when it must not run. */
  start(spec: DrillSpec, requestedBy: string): DrillReport {
    const keyring = this.deps.keyrings.get(spec.keyring);
    if (!keyring) throw new KekError('not-found', `no keyring named "${spec.keyring}"`);
    if (!this.deps.leadership.isLeader()) {
      throw new DrillRefused(`replica ${this.deps.leadership.replicaId} is not the leader: drills run on the leader only; send this to the lease holder (${this.deps.leaseHolder() || 'unknown'}; see kekctl status)`);
    }
    const running = this.drills.find((d) => d.report().state === 'running');
    if (running) throw new DrillRefused(`drill ${running.id} is still running; wait for it or abort it (DELETE /v1/admin/drills/${running.id})`);
    // Canary calls go through authorization like any caller's: refuse now rather than fail every canary.
    this.deps.service.authorize(spec.tenant, spec.keyring, 'wrap');
    this.deps.service.authorize(spec.tenant, spec.keyring, 'unwrap');
    if (spec.force && !spec.reason) throw new KekError('invalid-input', 'a forced drill needs a reason');
    const target = this.target(spec, keyring);
    const drill = new Drill({ ...spec, provider: target.name }, keyring, target, this.deps, requestedBy);
    drill.finished.then(
      () => this.deps.onFinished?.(drill.report()),
      (e: unknown) => this.deps.log.error({ err: e, drill: drill.id }, 'drill crashed'),
    );
    this.drills.unshift(drill);
    this.drills.splice(KEEP_REPORTS);
    return drill.report();
  }

  /** What the scenario faults; refuses a drill that cannot run here or would cause a real outage. */
  private target(spec: DrillSpec, keyring: Keyring): DrillTarget {
    if (spec.scenario === 'broker-failover' || spec.scenario === 'redis-outage') {
      const fleet = this.deps.fleet;
      if (!fleet) throw new DrillRefused(`the ${spec.scenario} drill needs a fleet (redis configured): a lone replica has no leader lease and no Redis to lose`);
      return spec.scenario === 'broker-failover' ? new LeaderStepDownTarget(fleet, spec.durationSeconds * 1000) : new RedisOutageTarget(fleet);
    }
    const status = keyring.status();
    const providerId = spec.provider ?? status.providers[0]?.id;
    if (!providerId || !status.providers.some((p) => p.id === providerId)) throw new KekError('invalid-input', `provider "${spec.provider}" is not in keyring ${spec.keyring}`);
    const hook = this.deps.faultHooks.get(providerId);
    if (!hook) throw new KekError('internal', `provider ${providerId} has no drill fault hook`);
    const healthyOthers = status.providers.filter((p) => p.id !== providerId && p.health.up);
    if (healthyOthers.length === 0 && !spec.force) {
      throw new DrillRefused(`keyring ${spec.keyring} has no healthy provider besides ${providerId}: this drill would cause a real outage (pass "force": true with a "reason" to run it anyway)`);
    }
    return new ProviderFaultTarget(hook, providerFault(spec));
  }

  list(): DrillReport[] {
    return this.drills.map((d) => d.report());
  }

  get(id: string): DrillReport | undefined {
    return this.drills.find((d) => d.id === id)?.report();
  }

  /** Abort a running drill; resolves once its fault is lifted and its canaries have answered. */
  async abort(id: string): Promise<DrillReport | undefined> {
    const d = this.drills.find((x) => x.id === id);
    if (!d) return undefined;
    d.abort();
    await d.finished.catch(() => undefined);
    return d.report();
  }

  /** On shutdown: abort whatever runs, so no fault outlives the process that set it. */
  async stopAll(): Promise<void> {
    await Promise.all(this.drills.filter((d) => d.report().state === 'running').map((d) => this.abort(d.id)));
  }
}

function providerFault(s: DrillSpec): DrillFault {
  if (s.scenario === 'provider-outage') return { kind: 'outage' };
  if (s.scenario === 'provider-latency') return { kind: 'latency', ms: s.latencyMs };
  return { kind: 'throttle', ratio: s.throttleRatio };
}

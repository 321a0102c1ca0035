/**
 * Failover drills: put a provider of a keyring into a simulated outage, latency or throttling for a while (or
 * make the leader step down, or cut this replica off Redis: targets.ts), send canary traffic through the real
 * data plane before, during and after, and keep a report an SRE can attach to a change ticket (verdict,
 * failures, latency per phase, time to failover and to recovery, every transition with its time). The fault is
 * always lifted at the end, on abort, and on shutdown.
 */
import { randomUUID } from 'node:crypto';
import type { Fleet } from '@kekbroker/ha';
import type { Keyring } from '@kekbroker/keyring';
import type { Logger } from '@kekbroker/telemetry';
import type { Leadership } from '../grpc/handlers';
import type { BrokerService } from '../service';
import { Canary } from './canary';
import type { FaultHookProvider } from './fault-hook';
import { faultSnapshot, type DrillTarget } from './targets';
import { summarize, timeline, type PhaseSummary, type Sample, type TimelinePoint } from './stats';

export const SCENARIOS = ['provider-outage', 'provider-latency', 'provider-throttle', 'broker-failover', 'redis-outage'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface DrillSpec {
  scenario: Scenario;
  keyring: string;
  /** Canary traffic runs as this tenant (it needs wrap and unwrap on the keyring). */
  tenant: string;
  /** The provider to fault (provider-* scenarios); default: the keyring's configured active. */
  provider?: string;
  durationSeconds: number;
  warmupSeconds: number;
  recoverySeconds: number;
  canaryPerSecond: number;
  latencyMs: number;
  throttleRatio: number;
  /** Run even when the keyring has no healthy passive (that drill would be a real outage). */
  force: boolean;
  reason?: string;
}

export interface Transition {
  t: number;
  actingActive: string | null;
  healthy: boolean;
  reason: string;
  roles: string;
  /** Lease holder as this replica sees it ("<replica>:<epoch>"). */
  leader: string;
  redisUp: boolean | null;
}

type Phase = 'before' | 'during' | 'after';

export interface DrillReport {
  id: string;
  spec: DrillSpec;
  state: 'running' | 'passed' | 'failed' | 'aborted';
  startedAt: string;
  endedAt: string | null;
  phase: Phase | 'done';
  /** 0..1 of the planned time. */
  progress: number;
  requestedBy: string;
  verdict: string;
  faultStartMs: number;
  faultEndMs: number | null;
  timeToFailoverMs: number | null;
  timeToRecoveryMs: number | null;
  wrongAnswers: number;
  phases: Record<Phase, PhaseSummary>;
  transitions: Transition[];
  timeline: TimelinePoint[];
}

export interface DrillDeps {
  service: BrokerService;
  keyrings: ReadonlyMap<string, Keyring>;
  faultHooks: ReadonlyMap<string, FaultHookProvider>;
  log: Logger;
  fleet: Fleet | undefined;
  /** Drills are singleton jobs: only the leader starts one, and a drill ends when its replica loses the lease. */
  leadership: Leadership;
  /** Who holds the lease, for the refusal message ('' when unknown). */
  leaseHolder: () => string;
  onFinished?: (report: DrillReport) => void;
}

/** A drill that must not start now (one is running, or it would cause a real outage): HTTP 409. */
export class DrillRefused extends Error {
  readonly statusCode = 409;
}

/** Reports kept in memory (the newest first); older ones are dropped. */
export const KEEP_REPORTS = 50;

/** The provider the keyring writes under first right now. */
export function actingActive(k: Keyring): string | null {
  const s = k.status() as ReturnType<Keyring['status']> & { actingActive?: string };
  return s.actingActive ?? s.providers.find((p) => p.role === 'active')?.id ?? null;
}

function snapshot(k: Keyring, t: number, deps: DrillDeps): Transition {
  const st = k.status();
  return { t: Math.round(t), actingActive: actingActive(k), healthy: st.healthy, reason: st.reason, roles: st.providers.map((p) => `${p.id}:${p.role}`).join(' '), ...faultSnapshot(deps.fleet, deps.leadership.replicaId) };
}

export class Drill {
  readonly id = randomUUID().slice(0, 8);
  private readonly samples: Record<Phase, Sample[]> = { before: [], during: [], after: [] };
  private readonly transitions: Transition[] = [];
  private phase: Phase | 'done' = 'before';
  private state: DrillReport['state'] = 'running';
  private verdict = 'running';
  private readonly t0 = performance.now();
  private readonly startedAt = new Date().toISOString();
  private endedAt: string | null = null;
  private faultStart = 0;
  private faultEnd: number | null = null;
  private abortNow: (() => void) | undefined;
  readonly finished: Promise<void>;

  constructor(
    readonly spec: DrillSpec,
    private readonly keyring: Keyring,
    readonly target: DrillTarget,
    private readonly deps: DrillDeps,
    private readonly requestedBy: string,
  ) {
    this.finished = this.run();
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  private wait(seconds: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, seconds * 1000);
      this.abortNow = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  abort(): void {
    if (this.state !== 'running') return;
    this.state = 'aborted';
    this.abortNow?.();
  }

  private async run(): Promise<void> {
    const onChange = (): void => {
      const snap = snapshot(this.keyring, this.now(), this.deps);
      const last = this.transitions[this.transitions.length - 1];
      const same = last && (['actingActive', 'healthy', 'roles', 'reason', 'leader', 'redisUp'] as const).every((f) => last[f] === snap[f]);
      if (!same) this.transitions.push(snap);
    };
    onChange();
    this.keyring.on('change', onChange);
    // Leadership and Redis health change without a keyring event: sample them.
    const poll = setInterval(onChange, 100);
    const canary = new Canary(this.deps.service, {
      drillId: this.id, tenant: this.spec.tenant, keyring: this.spec.keyring, perSecond: this.spec.canaryPerSecond, t0: this.t0,
      record: (s) => this.samples[this.phase === 'done' ? 'after' : this.phase].push(s),
    });
    const { log } = this.deps;
    try {
      canary.start();
      await this.wait(this.spec.warmupSeconds);
      if (this.state === 'running') {
        this.phase = 'during';
        this.faultStart = this.now();
        await this.target.inject();
        log.warn({ drill: this.id, scenario: this.spec.scenario, target: this.target.name, keyring: this.spec.keyring }, 'drill: fault injected');
        onChange();
        await this.wait(this.spec.durationSeconds);
      }
      await this.target.lift();
      this.faultEnd = this.now();
      log.warn({ drill: this.id, target: this.target.name }, 'drill: fault lifted');
      this.phase = 'after';
      if (this.state === 'running') await this.wait(this.spec.recoverySeconds);
    } finally {
      await this.target.lift();
      clearInterval(poll);
      await canary.stop();
      this.keyring.off('change', onChange);
      this.phase = 'done';
      this.endedAt = new Date().toISOString();
      this.conclude();
      log.warn({ drill: this.id, state: this.state, verdict: this.verdict }, 'drill finished');
    }
  }

  private conclude(): void {
    const all = [...this.samples.before, ...this.samples.during, ...this.samples.after];
    const failed = all.filter((s) => !s.ok);
    if (this.state === 'aborted') {
      this.verdict = `aborted by request; ${failed.length} of ${all.length} canary calls failed before that`;
      return;
    }
    const wrong = failed.filter((s) => s.error === 'wrong-answer').length;
    if (all.length === 0) {
      this.state = 'failed';
      this.verdict = 'no canary call completed';
    } else if (this.spec.scenario === 'broker-failover' && this.failover() === undefined) {
      this.state = 'failed';
      this.verdict = `no other replica took the leader lease during the drill (${failed.length} of ${all.length} canary calls failed): is another replica running and connected to Redis?`;
    } else if (failed.length > 0) {
      const codes = [...new Set(failed.map((s) => s.error))].join(', ');
      this.state = 'failed';
      this.verdict = `${failed.length} of ${all.length} canary calls failed (${codes})${wrong ? `, ${wrong} WRONG ANSWERS` : ''}`;
    } else {
      this.state = 'passed';
      this.verdict = `0 of ${all.length} canary calls failed`;
    }
  }

  /** The first transition after the fault that shows the scenario's failover (none for redis-outage). */
  private failover(): Transition | undefined {
    if (this.phase === 'before') return undefined;
    const afterFault = this.transitions.filter((t) => t.t >= this.faultStart);
    const self = `${this.deps.leadership.replicaId}:`;
    if (this.spec.scenario === 'broker-failover') return afterFault.find((t) => t.leader !== '' && !t.leader.startsWith(self));
    if (this.spec.scenario === 'redis-outage') return undefined;
    // Another provider acts as active (not merely "the active is down and nobody took over").
    const configured = this.keyring.status().providers[0]?.id ?? null;
    return afterFault.find((t) => t.actingActive !== null && t.actingActive !== configured);
  }

  private recovery(configured: string | null): Transition | undefined {
    if (this.faultEnd === null) return undefined;
    const after = this.transitions.filter((t) => t.t >= (this.faultEnd as number));
    if (this.spec.scenario === 'broker-failover') return undefined; // any replica may lead afterwards
    if (this.spec.scenario === 'redis-outage') return after.find((t) => t.redisUp === true);
    return after.find((t) => t.actingActive === configured && t.healthy);
  }

  report(): DrillReport {
    const configured = this.keyring.status().providers[0]?.id ?? null;
    const planned = this.spec.warmupSeconds + this.spec.durationSeconds + this.spec.recoverySeconds;
    const failover = this.failover();
    const recovery = this.recovery(configured);
    const all = [...this.samples.before, ...this.samples.during, ...this.samples.after];
    return {
      id: this.id,
      spec: this.spec,
      state: this.state,
      startedAt: this.startedAt,
      endedAt: this.endedAt,
      phase: this.phase,
      progress: this.phase === 'done' ? 1 : Math.min(1, this.now() / 1000 / planned),
      requestedBy: this.requestedBy,
      verdict: this.verdict,
      faultStartMs: Math.round(this.faultStart),
      faultEndMs: this.faultEnd === null ? null : Math.round(this.faultEnd),
      timeToFailoverMs: failover ? Math.round(failover.t - this.faultStart) : null,
      timeToRecoveryMs: recovery && this.faultEnd !== null ? Math.round(recovery.t - this.faultEnd) : null,
      wrongAnswers: all.filter((s) => s.error === 'wrong-answer').length,
      phases: { before: summarize(this.samples.before), during: summarize(this.samples.during), after: summarize(this.samples.after) },
      transitions: [...this.transitions],
      timeline: timeline(all, this.phase === 'done' ? Math.max(1, all.reduce((m, s) => Math.max(m, s.t), 0) / 1000) : this.now() / 1000),
    };
  }
}


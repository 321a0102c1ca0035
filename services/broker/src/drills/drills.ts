/**
 * Failover drills: put a provider of a keyring into a simulated outage, latency or throttling for a while,
 * send canary traffic through the real data plane before, during and after, and keep a report an SRE can
 * attach to a change ticket (verdict, failures, latency per phase, time to failover and to recovery, every
 * keyring transition with its time). The fault is always lifted at the end, on abort, and on shutdown.
 */
import { randomUUID } from 'node:crypto';
import { KekError } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import type { Logger } from '@kekbroker/telemetry';
import type { Leadership } from '../grpc/handlers';
import type { BrokerService } from '../service';
import { Canary } from './canary';
import type { DrillFault, FaultHookProvider } from './fault-hook';
import { summarize, timeline, type PhaseSummary, type Sample, type TimelinePoint } from './stats';

export const SCENARIOS = ['provider-outage', 'provider-latency', 'provider-throttle'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface DrillSpec {
  scenario: Scenario;
  keyring: string;
  /** Canary traffic runs as this tenant (it needs wrap and unwrap on the keyring). */
  tenant: string;
  /** The provider to fault; default: the keyring's configured active. */
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
const KEEP_REPORTS = 50;

/** The provider the keyring writes under first right now. */
export function actingActive(k: Keyring): string | null {
  const s = k.status() as ReturnType<Keyring['status']> & { actingActive?: string };
  return s.actingActive ?? s.providers.find((p) => p.role === 'active')?.id ?? null;
}

function snapshot(k: Keyring, t: number): Transition {
  const s = k.status();
  return { t: Math.round(t), actingActive: actingActive(k), healthy: s.healthy, reason: s.reason, roles: s.providers.map((p) => `${p.id}:${p.role}`).join(' ') };
}

class Drill {
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
    private readonly hook: FaultHookProvider,
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

  private fault(): DrillFault {
    const s = this.spec;
    if (s.scenario === 'provider-outage') return { kind: 'outage' };
    if (s.scenario === 'provider-latency') return { kind: 'latency', ms: s.latencyMs };
    return { kind: 'throttle', ratio: s.throttleRatio };
  }

  private async run(): Promise<void> {
    const onChange = (): void => {
      const snap = snapshot(this.keyring, this.now());
      const last = this.transitions[this.transitions.length - 1];
      if (!last || last.actingActive !== snap.actingActive || last.healthy !== snap.healthy || last.roles !== snap.roles || last.reason !== snap.reason) this.transitions.push(snap);
    };
    onChange();
    this.keyring.on('change', onChange);
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
        this.hook.set(this.fault());
        log.warn({ drill: this.id, scenario: this.spec.scenario, provider: this.hook.id, keyring: this.spec.keyring }, 'drill: fault injected');
        onChange();
        await this.wait(this.spec.durationSeconds);
      }
      this.hook.set(undefined);
      this.faultEnd = this.now();
      log.warn({ drill: this.id, provider: this.hook.id }, 'drill: fault lifted');
      this.phase = 'after';
      if (this.state === 'running') await this.wait(this.spec.recoverySeconds);
    } finally {
      this.hook.set(undefined);
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
    } else if (failed.length > 0) {
      const codes = [...new Set(failed.map((s) => s.error))].join(', ');
      this.state = 'failed';
      this.verdict = `${failed.length} of ${all.length} canary calls failed (${codes})${wrong ? `, ${wrong} WRONG ANSWERS` : ''}`;
    } else {
      this.state = 'passed';
      this.verdict = `0 of ${all.length} canary calls failed`;
    }
  }

  report(): DrillReport {
    const configured = this.keyring.status().providers[0]?.id ?? null;
    const planned = this.spec.warmupSeconds + this.spec.durationSeconds + this.spec.recoverySeconds;
    const afterFault = this.transitions.filter((t) => t.t >= this.faultStart && this.phase !== 'before');
    // Failover: another provider acts as active (not merely "the active is down and nobody took over").
    const failover = afterFault.find((t) => t.actingActive !== null && t.actingActive !== configured);
    const recovery = this.faultEnd === null ? undefined : this.transitions.find((t) => t.t >= (this.faultEnd as number) && t.actingActive === configured && t.healthy);
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

export class DrillRunner {
  private readonly drills: Drill[] = [];

  constructor(private readonly deps: DrillDeps) {
    // Fenced by the lease: a replica that loses leadership (step-down, Redis partition) lifts its drill's fault.
    deps.leadership.events.on('change', () => {
      if (deps.leadership.isLeader()) return;
      for (const d of this.drills) {
        if (d.report().state !== 'running') continue;
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
    const status = keyring.status();
    const providerId = spec.provider ?? status.providers[0]?.id;
    if (!providerId || !status.providers.some((p) => p.id === providerId)) throw new KekError('invalid-input', `provider "${spec.provider}" is not in keyring ${spec.keyring}`);
    const hook = this.deps.faultHooks.get(providerId);
    if (!hook) throw new KekError('internal', `provider ${providerId} has no drill fault hook`);
    if (!this.deps.leadership.isLeader()) {
      throw new DrillRefused(`replica ${this.deps.leadership.replicaId} is not the leader: drills run on the leader only; send this to the lease holder (${this.deps.leaseHolder() || 'unknown'}; see kekctl status)`);
    }
    const running = this.drills.find((d) => d.report().state === 'running');
    if (running) throw new DrillRefused(`drill ${running.id} is still running; wait for it or abort it (DELETE /v1/admin/drills/${running.id})`);
    // Canary calls go through authorization like any caller's: refuse now rather than fail every canary.
    this.deps.service.authorize(spec.tenant, spec.keyring, 'wrap');
    this.deps.service.authorize(spec.tenant, spec.keyring, 'unwrap');
    const healthyOthers = status.providers.filter((p) => p.id !== providerId && p.health.up);
    if (healthyOthers.length === 0 && !spec.force) {
      throw new DrillRefused(`keyring ${spec.keyring} has no healthy provider besides ${providerId}: this drill would cause a real outage (pass "force": true with a "reason" to run it anyway)`);
    }
    if (spec.force && !spec.reason) throw new KekError('invalid-input', 'a forced drill needs a reason');
    const drill = new Drill({ ...spec, provider: providerId }, keyring, hook, this.deps, requestedBy);
    drill.finished.then(
      () => this.deps.onFinished?.(drill.report()),
      (e: unknown) => this.deps.log.error({ err: e, drill: drill.id }, 'drill crashed'),
    );
    this.drills.unshift(drill);
    this.drills.splice(KEEP_REPORTS);
    return drill.report();
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

/** Metrics of the rotation lifecycle and drills: key age, rotations, schedule, generations in use, drill results. */
import { Counter, Gauge, PREFIX, type Registry } from '@kekbroker/telemetry';
import type { Keyring } from '@kekbroker/keyring';
import type { DrillReport } from '../drills/drills';
import type { UsageBook } from '../usage';
import type { KeyringLifecycle } from './lifecycle';

export class LifecycleMetrics {
  readonly rotations: Counter<'keyring' | 'by' | 'result'>;
  readonly drills: Counter<'keyring' | 'scenario' | 'state'>;
  private readonly drillFailedCalls: Gauge<'keyring' | 'scenario'>;
  private readonly drillPassed: Gauge<'keyring' | 'scenario'>;

  constructor(registry: Registry, keyrings: () => Iterable<Keyring>, lifecycle: KeyringLifecycle, usage: UsageBook, quietSeconds: (keyring: string) => number) {
    const perKeyring = (name: string, help: string, value: (k: Keyring) => number | undefined): void => {
      new Gauge({
        name: `${PREFIX}${name}`, help, labelNames: ['keyring'], registers: [registry],
        collect() {
          this.reset();
          for (const k of keyrings()) {
            const v = value(k);
            if (v !== undefined) this.set({ keyring: k.name }, v);
          }
        },
      });
    };
    perKeyring('keyring_key_age_seconds', 'Time since the fleet first saw the keyring\'s current generation (its last rotation)', (k) => lifecycle.view(k.name).keyAgeSeconds);
    perKeyring('keyring_last_rotation_timestamp_seconds', 'When the last rotation run by kekbroker (schedule or admin) started, Unix seconds', (k) => {
      const at = lifecycle.view(k.name).lastRotation?.startedAt;
      return at ? Date.parse(at) / 1000 : undefined;
    });
    perKeyring('keyring_rotation_next_due_timestamp_seconds', 'When the next scheduled rotation is due, Unix seconds (keyrings with rotationPeriodSeconds only)', (k) => {
      const due = lifecycle.view(k.name).schedule?.nextDue;
      return due ? Date.parse(due) / 1000 : undefined;
    });
    perKeyring('keyring_rotation_overdue', '1 when a scheduled rotation is late past its grace (max(60 s, period/10))', (k) => {
      const s = lifecycle.view(k.name).schedule;
      return s ? Number(s.overdue) : undefined;
    });
    perKeyring('keyring_generations_in_use', 'Generations this replica saw wrapped or unwrapped within the keyring\'s retireQuietSeconds', (k) => usage.generationsUsedSince(k.name, Date.now() - quietSeconds(k.name) * 1000));
    perKeyring('keyring_retired_generations', 'Generations retired (their envelopes no longer unwrap)', (k) => lifecycle.view(k.name).retired.length);
    this.rotations = new Counter({ name: `${PREFIX}rotations_total`, help: 'Keyring rotations by trigger (schedule, admin) and result (ok, failed)', labelNames: ['keyring', 'by', 'result'], registers: [registry] });
    this.drills = new Counter({ name: `${PREFIX}drills_total`, help: 'Finished drills by keyring, scenario and state (passed, failed, aborted)', labelNames: ['keyring', 'scenario', 'state'], registers: [registry] });
    this.drillPassed = new Gauge({ name: `${PREFIX}drill_last_passed`, help: '1 when the last drill of this scenario on the keyring passed, 0 when it failed', labelNames: ['keyring', 'scenario'], registers: [registry] });
    this.drillFailedCalls = new Gauge({ name: `${PREFIX}drill_last_failed_calls`, help: 'Canary calls that failed in the last drill of this scenario on the keyring', labelNames: ['keyring', 'scenario'], registers: [registry] });
  }

  drillFinished(r: DrillReport): void {
    const labels = { keyring: r.spec.keyring, scenario: r.spec.scenario };
    this.drills.inc({ ...labels, state: r.state });
    if (r.state === 'aborted') return;
    this.drillPassed.set(labels, r.state === 'passed' ? 1 : 0);
    const p = r.phases;
    this.drillFailedCalls.set(labels, p.before.failed + p.during.failed + p.after.failed);
  }
}

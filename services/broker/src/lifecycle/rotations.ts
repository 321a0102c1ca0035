/**
 * Rotations, from the admin API or on a schedule, with one rule: never two at once for a keyring, across the
 * whole fleet. A rotation first claims `rotation:attempt` with a compare-and-set; scheduled ones are run by
 * the leader only and the claim is fenced by its lease (a replica that lost the lease cannot claim). The claim
 * protects the start; the outcome is recorded whatever happens to the lease meanwhile, because the KMS
 * rotation has happened and the record must say so.
 *
 * A claim left 'started' by a dead replica is taken over: by the next leader at once for a scheduled rotation
 * (its term ended), after STUCK_ROTATION_MS for an admin one. The takeover re-runs the rotation in full, so
 * every provider of the keyring moves to a fresh version (an interrupted run may have rotated only some).
 */
import { KekError, deadlineSignal } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import type { Logger } from '@kekbroker/telemetry';
import { ATTEMPT, LAST, STUCK_ROTATION_MS, parseJson, type KeyringLifecycle, type RotationRecord } from './lifecycle';

export interface RotationDeps {
  lifecycle: KeyringLifecycle;
  keyrings: ReadonlyMap<string, Keyring>;
  replicaId: string;
  /** Leader epoch this replica last saw. */
  epoch: () => number;
  /** The lease token while this replica leads ('' without Redis: a lone replica always leads); undefined otherwise. */
  leaderToken: () => string | undefined;
  /** Tell the other replicas to re-read the keyring now. */
  publish: (keyring: string) => Promise<void>;
  log: Logger;
  onRotated?: (keyring: string, by: RotationRecord['by'], ok: boolean) => void;
}

const ROTATE_DEADLINE_MS = 60_000;

export class Rotations {
  constructor(private readonly d: RotationDeps) {}

  /** Rotate now. Throws a 409-style KekError when another rotation of this keyring is running. */
  async rotate(keyring: Keyring, by: RotationRecord['by'], token = ''): Promise<RotationRecord> {
    const claimed = await this.claim(keyring, by, token);
    try {
      const to = await keyring.rotate(deadlineSignal(ROTATE_DEADLINE_MS));
      const done: RotationRecord = { ...claimed, state: 'done', finishedAt: new Date().toISOString(), to };
      await this.record(keyring.name, done, true);
      await this.d.lifecycle.observe(keyring.name, to);
      this.d.log.warn({ keyring: keyring.name, by, from: claimed.from, to, epoch: claimed.epoch }, `keyring ${keyring.name} rotated (${by})`);
      this.d.onRotated?.(keyring.name, by, true);
      return done;
    } catch (e) {
      const failed: RotationRecord = { ...claimed, state: 'failed', finishedAt: new Date().toISOString(), error: (e as Error).message };
      await this.record(keyring.name, failed, false).catch(() => undefined);
      this.d.log.error({ err: e, keyring: keyring.name, by }, `rotation of keyring ${keyring.name} failed; the keyring keeps its current key_id`);
      this.d.onRotated?.(keyring.name, by, false);
      throw e;
    }
  }

  private async claim(keyring: Keyring, by: RotationRecord['by'], token: string): Promise<RotationRecord> {
    const name = keyring.name;
    await this.d.lifecycle.reload(name);
    const raw = this.d.lifecycle.raw(name, ATTEMPT);
    const cur = parseJson<RotationRecord>(raw);
    const epoch = this.d.epoch();
    if (cur?.state === 'started') {
      const stuck = Date.now() - Date.parse(cur.startedAt) > STUCK_ROTATION_MS;
      const endedTerm = by === 'schedule' && cur.by === 'schedule' && cur.epoch < epoch;
      if (!stuck && !endedTerm) throw busy(name, cur);
      this.d.log.warn({ keyring: name, interrupted: cur }, `taking over an interrupted rotation of keyring ${name} (started by ${cur.replica} at ${cur.startedAt}); re-running it in full`);
    }
    const claim: RotationRecord = { state: 'started', by, replica: this.d.replicaId, epoch, startedAt: new Date().toISOString(), ...(keyring.keyId ? { from: keyring.keyId } : {}) };
    const w = await this.d.lifecycle.store.setFenced(name, ATTEMPT, raw, JSON.stringify(claim), token);
    if (w === 'not-leader') throw new KekError('unavailable', `replica ${this.d.replicaId} lost the leader lease before rotating keyring ${name}; the new leader will run it`);
    if (w === 'changed') {
      await this.d.lifecycle.reload(name);
      throw busy(name, parseJson<RotationRecord>(this.d.lifecycle.raw(name, ATTEMPT)));
    }
    await this.d.lifecycle.reload(name);
    return claim;
  }

  private async record(keyring: string, rec: RotationRecord, done: boolean): Promise<void> {
    const store = this.d.lifecycle.store;
    await store.set(keyring, ATTEMPT, JSON.stringify(rec));
    if (done) await store.set(keyring, LAST, JSON.stringify(rec));
    await this.d.lifecycle.reload(keyring);
    await this.d.publish(keyring).catch(() => undefined);
  }

  /** The leader's scheduled rotations. Returns ms until the next check. */
  async runDue(now = Date.now()): Promise<number> {
    let next = 5_000;
    const token = this.d.leaderToken();
    if (token === undefined) return 1_000;
    for (const k of this.d.keyrings.values()) {
      if (this.d.lifecycle.period(k.name) <= 0 || !k.keyId) continue;
      try {
        await this.d.lifecycle.reload(k.name);
        await this.d.lifecycle.observe(k.name, k.keyId);
      } catch (e) {
        this.d.log.warn({ err: e, keyring: k.name }, 'scheduled rotation: cannot read the keyring lifecycle (redis down?); will retry');
        continue;
      }
      const attempt = parseJson<RotationRecord>(this.d.lifecycle.raw(k.name, ATTEMPT));
      const interrupted = attempt?.state === 'started' && attempt.by === 'schedule' && attempt.epoch < this.d.epoch();
      const due = this.d.lifecycle.nextDueMs(k.name);
      if (due === undefined) continue;
      if (now >= due || interrupted) {
        await this.rotate(k, 'schedule', token).catch(() => undefined); // logged, recorded, retried after a back-off
        const again = this.d.lifecycle.nextDueMs(k.name);
        if (again !== undefined) next = Math.min(next, again - Date.now());
      } else {
        next = Math.min(next, due - now);
      }
    }
    return Math.max(50, next);
  }
}

function busy(keyring: string, cur: RotationRecord | undefined): KekError {
  const who = cur ? ` (${cur.by} rotation started by ${cur.replica} at ${cur.startedAt})` : '';
  return Object.assign(new KekError('unavailable', `keyring "${keyring}" is already rotating${who}; check GET /v1/admin/status`), { statusCode: 409 });
}

/** Runs Rotations.runDue on a timer until stopped; the timer follows the next due time. */
export class RotationScheduler {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(private readonly rotations: Rotations, private readonly log: Logger) {}

  start(): void {
    this.arm(1_000);
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.rotations.runDue().then(
        (next) => this.arm(next),
        (e: unknown) => {
          this.log.error({ err: e }, 'scheduled rotation check failed');
          this.arm(5_000);
        },
      );
    }, ms);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}

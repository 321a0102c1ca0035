/**
 * Which provider acts as active (its wrap is the one a Wrap waits for). Normally the configured active,
 * the first of the keyring's list. When its breaker opens, the first healthy provider in list order takes
 * over. A provider that comes back becomes eligible again only after its breaker has stayed closed, with no
 * counted failure, for the hold-down period, so a flapping provider cannot flip the acting active back and forth. An operator can
 * fail over to a named provider (optionally pinned: no automatic move at all) and fail back.
 *
 * key_id does not depend on any of this: it names the generation (every provider's version refs).
 */
import type { ProviderGuard } from '@kekbroker/resilience';

export interface ActingChange {
  from: string;
  to: string;
  /** 'breaker' (automatic failover), 'failback' (after hold-down), 'operator' (admin API). */
  cause: 'breaker' | 'failback' | 'operator';
  reason: string;
}

export class ActingActive {
  private current: string;
  private pinnedTo: string | undefined;
  /** Provider id -> earliest time (ms) it may become acting again. */
  private readonly eligibleAt = new Map<string, number>();

  constructor(
    private readonly order: readonly string[],
    private readonly guards: ReadonlyMap<string, ProviderGuard>,
    readonly holdDownMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.current = order[0] as string;
    for (const id of order) {
      // A breaker that closes (or an isolation lifted) starts the provider's hold-down.
      const g = guards.get(id) as ProviderGuard;
      g.on('transition', (t: { to: string }) => {
        if (t.to === 'closed') this.eligibleAt.set(id, this.now() + this.holdDownMs);
      });
      // "Healthy for the hold-down period" means no counted failure in it: a provider failing often, but not
      // often enough to re-open its breaker, must not take the acting role back.
      g.on('failure', () => this.eligibleAt.set(id, this.now() + this.holdDownMs));
      g.on('isolation', (e: { isolated: boolean }) => {
        if (!e.isolated) this.eligibleAt.set(id, this.now() + this.holdDownMs);
      });
    }
  }

  get pinned(): string | undefined {
    return this.pinnedTo;
  }

  get configured(): string {
    return this.order[0] as string;
  }

  /** Milliseconds until `id` may act again after a recovery (0 if eligible now). */
  holdDownLeftMs(id: string): number {
    return Math.max(0, (this.eligibleAt.get(id) ?? 0) - this.now());
  }

  /**
   * Re-evaluate; returns the change if the acting active moved. `refusing(id)`: the provider answers but
   * refuses our key (revoked, misconfigured); it stays acting if it is (no silent failover from a kill switch)
   * but is never moved to automatically.
   */
  evaluate(refusing: (id: string) => boolean = () => false): ActingChange | undefined {
    if (this.pinnedTo) return this.moveTo(this.pinnedTo, 'operator', 'pinned by an operator');
    const g = (id: string): ProviderGuard => this.guards.get(id) as ProviderGuard;
    for (const id of this.order) {
      if (!g(id).healthy) continue;
      if (id !== this.current && (this.holdDownLeftMs(id) > 0 || refusing(id))) continue;
      const idx = this.order.indexOf(id);
      const cur = this.order.indexOf(this.current);
      const cause = idx < cur ? 'failback' : 'breaker';
      const reason = cause === 'failback'
        ? `${id} healthy for the hold-down period (${this.holdDownMs / 1000} s)`
        : `${this.current} is ${g(this.current).isolated ? 'isolated' : `down (breaker ${g(this.current).state}: ${g(this.current).status().lastError || 'no error recorded'})`}`;
      return this.moveTo(id, cause, reason);
    }
    return undefined; // nobody healthy: keep the current one (its calls fail fast and say why)
  }

  private moveTo(id: string, cause: ActingChange['cause'], reason: string): ActingChange | undefined {
    if (id === this.current) return undefined;
    const change = { from: this.current, to: id, cause, reason };
    this.current = id;
    return change;
  }

  get id(): string {
    return this.current;
  }

  /**
   * Operator failover. Pinned: stays on `id` until failback. Not pinned: providers ahead of `id` must then
   * hold down (stay healthy for the hold-down period) before the keyring moves back automatically.
   */
  failover(id: string, pin: boolean): ActingChange | undefined {
    if (!this.order.includes(id)) throw new Error(`provider ${id} is not in this keyring`);
    this.pinnedTo = pin ? id : undefined;
    const until = this.now() + this.holdDownMs;
    for (const p of this.order.slice(0, this.order.indexOf(id))) this.eligibleAt.set(p, Math.max(this.eligibleAt.get(p) ?? 0, until));
    return this.moveTo(id, 'operator', pin ? `operator failover to ${id} (pinned)` : `operator failover to ${id}`);
  }

  /** Operator failback: release the pin and return to the first healthy provider in order, without hold-down. */
  failback(): ActingChange | undefined {
    this.pinnedTo = undefined;
    for (const id of this.order) this.eligibleAt.delete(id);
    const first = this.order.find((id) => (this.guards.get(id) as ProviderGuard).healthy) ?? this.configured;
    return this.moveTo(first, 'operator', `operator failback to ${first}`);
  }
}

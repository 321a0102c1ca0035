/**
 * Fault injection shared by every emulator. A rule says what goes wrong (latency, throttling, a server
 * error, an outage, a corrupt response), for which key (or all), and for how many calls (or until cleared).
 * Emulators call `take(key)` once per incoming operation and act on what it returns.
 */
export type FaultKind = 'latency' | 'throttle' | 'error' | 'outage' | 'corrupt';

export interface FaultRule {
  kind: FaultKind;
  /** For `latency`: delay in milliseconds before the answer. */
  ms?: number;
  /** Only calls that name this key (emulator-specific key name, id or alias); all keys when absent. */
  key?: string;
  /** Only this operation (the emulator's name for it, e.g. `RotateKeyOnDemand`, as counted by /calls); all when absent. */
  op?: string;
  /** Apply to the next `count` matching calls, then drop the rule; until cleared when absent. */
  count?: number;
}

export interface ActiveFaults {
  latencyMs: number;
  throttle: boolean;
  error: boolean;
  outage: boolean;
  corrupt: boolean;
}

export class FaultInjector {
  private rules: FaultRule[] = [];
  /** Calls seen per operation name, for tests that count KMS round trips. */
  readonly calls = new Map<string, number>();

  add(rule: FaultRule): void {
    if (!['latency', 'throttle', 'error', 'outage', 'corrupt'].includes(rule.kind)) throw new Error(`unknown fault kind ${String(rule.kind)}`);
    if (rule.count !== undefined && (!Number.isInteger(rule.count) || rule.count < 1)) throw new Error('count must be a positive integer');
    if (rule.kind === 'latency' && !(typeof rule.ms === 'number' && rule.ms >= 0)) throw new Error('latency needs ms >= 0');
    if (rule.op !== undefined && typeof rule.op !== 'string') throw new Error('op must be an operation name');
    this.rules.push({ ...rule });
  }

  clear(): void {
    this.rules = [];
  }

  list(): readonly FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** Is an outage active for any key? The TCP front asks this before accepting bytes. */
  get globalOutage(): boolean {
    return this.rules.some((r) => r.kind === 'outage' && r.key === undefined);
  }

  /** Record a call and return the faults that apply to it, consuming counted rules. */
  take(operation: string, key?: string): ActiveFaults {
    this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1);
    const out: ActiveFaults = { latencyMs: 0, throttle: false, error: false, outage: false, corrupt: false };
    for (const r of this.rules) {
      if (r.key !== undefined && !(key !== undefined && key.includes(r.key))) continue;
      if (r.op !== undefined && r.op !== operation) continue;
      if (r.kind === 'latency') out.latencyMs = Math.max(out.latencyMs, r.ms ?? 0);
      else out[r.kind] = true;
      if (r.count !== undefined) r.count -= 1;
    }
    this.rules = this.rules.filter((r) => r.count === undefined || r.count > 0);
    return out;
  }

  callCount(operation?: string): number {
    if (operation) return this.calls.get(operation) ?? 0;
    let n = 0;
    for (const v of this.calls.values()) n += v;
    return n;
  }
}

/** Sleep that ends early (resolving false) when the signal fires: a slow emulator must not leak timers. */
export function delay(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (ms <= 0) return resolve(true);
    const t = setTimeout(() => resolve(true), ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve(false);
    }, { once: true });
  });
}

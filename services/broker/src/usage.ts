/**
 * Key usage per keyring, generation (key_id) and tenant: how often and when each tenant last wrapped or
 * unwrapped under each generation. It answers "which clusters still read generation G, and since when have
 * they not" before an old KEK is retired, and which clusters still need their Secrets re-written after a
 * rotation.
 *
 * Each replica counts in memory (one map update per call) and, with Redis, adds its deltas to the fleet's
 * counters every 2 s (FLUSH_MS); a report then covers every replica (`scope: "fleet"`). Without Redis, or while
 * it is down, the report is this replica's own since it started (`scope: "replica"`, with `partial` saying why).
 * kube-apiservers cache decrypted DEK seeds: the broker sees a generation read when an apiserver starts or
 * misses its cache, not on every Secret read.
 */
import type { UsageDelta, UsageRow } from '@kekbroker/ha';

export interface OpUsage {
  count: number;
  firstSeen: string;
  lastSeen: string;
}

export interface TenantUsage {
  tenant: string;
  wrap?: OpUsage;
  unwrap?: OpUsage;
}

export interface GenerationUsage {
  keyId: string;
  current: boolean;
  tenants: TenantUsage[];
}

export interface UsageReport {
  keyring: string;
  /** "fleet": every replica's counts through Redis; "replica": this replica's since `since`. */
  scope: 'fleet' | 'replica';
  /** Why a report is this replica's only although Redis is configured. */
  partial?: string;
  since: string;
  generations: GenerationUsage[];
}

/** Where replicas pool their counts (packages/ha RedisUsageCounters). */
export interface SharedUsage {
  add(deltas: readonly UsageDelta[]): Promise<void>;
  load(keyring: string): Promise<UsageRow[]>;
}

/** How often a replica adds its counts to the fleet's: a fleet report lags by at most this much. */
export const FLUSH_MS = 2_000;

type Key = string; // `${keyring}\0${keyId}\0${tenant}\0${op}`

export class UsageBook {
  /** This replica since start. */
  private readonly local = new Map<Key, UsageDelta>();
  /** Not yet added to the fleet's counters. */
  private pending = new Map<Key, UsageDelta>();
  private readonly since = new Date().toISOString();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(private readonly shared?: SharedUsage) {
    if (shared) {
      this.timer = setInterval(() => void this.flush().catch(() => undefined), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Record one successful operation. Names come from config (the caller checks), so the book stays bounded. */
  record(keyring: string, keyId: string, tenant: string, op: 'wrap' | 'unwrap', at = Date.now()): void {
    const key = `${keyring}\0${keyId}\0${tenant}\0${op}`;
    bump(this.local, key, keyring, keyId, tenant, op, at);
    if (this.shared) bump(this.pending, key, keyring, keyId, tenant, op, at);
  }

  /** Add pending deltas to the fleet's counters; on failure they stay pending for the next flush. */
  flush(): Promise<void> {
    if (!this.shared) return Promise.resolve();
    if (this.flushing) return this.flushing.then(() => this.flush());
    const batch = this.pending;
    if (batch.size === 0) return Promise.resolve();
    this.pending = new Map();
    this.flushing = this.shared.add([...batch.values()]).catch((e: unknown) => {
      for (const [k, d] of batch) bump(this.pending, k, d.keyring, d.keyId, d.tenant, d.op, d.firstMs, d.count, d.lastMs);
      throw e;
    }).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Fleet-wide when Redis answers, else this replica's own counts (and the report says so). */
  async report(keyring: string, currentKeyId: string | undefined): Promise<UsageReport> {
    const { rows, scope, partial } = await this.rows(keyring);
    const byGen = new Map<string, Map<string, TenantUsage>>();
    for (const r of rows) {
      const tenants = byGen.get(r.keyId) ?? new Map<string, TenantUsage>();
      byGen.set(r.keyId, tenants);
      const t = tenants.get(r.tenant) ?? { tenant: r.tenant };
      tenants.set(r.tenant, t);
      t[r.op] = { count: r.count, firstSeen: new Date(r.firstMs).toISOString(), lastSeen: new Date(r.lastMs).toISOString() };
    }
    if (currentKeyId && !byGen.has(currentKeyId)) byGen.set(currentKeyId, new Map());
    const generations = [...byGen].map(([keyId, t]) => ({ keyId, current: keyId === currentKeyId, tenants: [...t.values()].sort((a, b) => a.tenant.localeCompare(b.tenant)) }));
    // The current generation first, then the others by most recent use.
    const last = (g: GenerationUsage): string => g.tenants.reduce((m, t) => [m, t.wrap?.lastSeen ?? '', t.unwrap?.lastSeen ?? ''].sort().pop() as string, '');
    generations.sort((a, b) => Number(b.current) - Number(a.current) || last(b).localeCompare(last(a)));
    return { keyring, scope, ...(partial ? { partial } : {}), since: this.since, generations };
  }

  /** Tenants that unwrapped `keyId` of `keyring` at or after `since` (a retire is refused while there are any). */
  async readersSince(keyring: string, keyId: string, since: Date): Promise<{ tenants: Array<{ tenant: string; lastSeen: string }>; scope: UsageReport['scope']; partial?: string }> {
    const { rows, scope, partial } = await this.rows(keyring);
    const tenants = rows
      .filter((r) => r.keyId === keyId && r.op === 'unwrap' && r.lastMs >= since.getTime())
      .map((r) => ({ tenant: r.tenant, lastSeen: new Date(r.lastMs).toISOString() }))
      .sort((a, b) => a.tenant.localeCompare(b.tenant));
    return { tenants, scope, ...(partial ? { partial } : {}) };
  }

  /** Distinct generations any tenant wrapped or unwrapped since `since` (metric: generations in use). */
  generationsUsedSince(keyring: string, since: number): number {
    const ids = new Set<string>();
    for (const d of this.local.values()) if (d.keyring === keyring && d.lastMs >= since) ids.add(d.keyId);
    return ids.size;
  }

  private async rows(keyring: string): Promise<{ rows: UsageRow[]; scope: UsageReport['scope']; partial?: string }> {
    const mine = [...this.local.values()].filter((d) => d.keyring === keyring);
    if (!this.shared) return { rows: mine, scope: 'replica' };
    try {
      await this.flush();
      return { rows: await this.shared.load(keyring), scope: 'fleet' };
    } catch (e) {
      return { rows: mine, scope: 'replica', partial: `redis unreachable (${(e as Error).message}): this replica's counts only` };
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

function bump(map: Map<Key, UsageDelta>, key: Key, keyring: string, keyId: string, tenant: string, op: 'wrap' | 'unwrap', firstMs: number, count = 1, lastMs = firstMs): void {
  const d = map.get(key);
  if (d) {
    d.count += count;
    if (firstMs < d.firstMs) d.firstMs = firstMs;
    if (lastMs > d.lastMs) d.lastMs = lastMs;
  } else {
    map.set(key, { keyring, keyId, tenant, op, count, firstMs, lastMs });
  }
}

/**
 * Key usage per keyring, generation (key_id) and tenant: how often and when each tenant last wrapped or
 * unwrapped under each generation. It answers "which clusters still read generation G, and since when have
 * they not" before an old KEK is retired, and which clusters still need their Secrets re-written after a
 * rotation. This book is one replica's memory since it started: its report says so (`scope`).
 */

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
  /** What the counts cover: this replica since it started (see HA docs for fleet-wide counts). */
  scope: 'replica';
  since: string;
  generations: GenerationUsage[];
}

type Key = string; // `${keyring}\0${keyId}\0${tenant}`

export class UsageBook {
  private readonly entries = new Map<Key, { keyring: string; keyId: string; tenant: string; wrap?: OpUsage; unwrap?: OpUsage }>();
  private readonly since = new Date().toISOString();

  /** Record one successful operation. Names come from config (the caller checks), so the book stays bounded. */
  record(keyring: string, keyId: string, tenant: string, op: 'wrap' | 'unwrap', at = new Date()): void {
    const key = `${keyring}\0${keyId}\0${tenant}`;
    let e = this.entries.get(key);
    if (!e) {
      e = { keyring, keyId, tenant };
      this.entries.set(key, e);
    }
    const iso = at.toISOString();
    const u = e[op];
    if (u) {
      u.count++;
      u.lastSeen = iso;
    } else {
      e[op] = { count: 1, firstSeen: iso, lastSeen: iso };
    }
  }

  report(keyring: string, currentKeyId: string | undefined): UsageReport {
    const byGen = new Map<string, TenantUsage[]>();
    for (const e of this.entries.values()) {
      if (e.keyring !== keyring) continue;
      const list = byGen.get(e.keyId) ?? [];
      list.push({ tenant: e.tenant, ...(e.wrap ? { wrap: { ...e.wrap } } : {}), ...(e.unwrap ? { unwrap: { ...e.unwrap } } : {}) });
      byGen.set(e.keyId, list);
    }
    if (currentKeyId && !byGen.has(currentKeyId)) byGen.set(currentKeyId, []);
    const generations = [...byGen].map(([keyId, tenants]) => ({ keyId, current: keyId === currentKeyId, tenants: tenants.sort((a, b) => a.tenant.localeCompare(b.tenant)) }));
    // The current generation first, then the others by most recent use.
    const last = (g: GenerationUsage) => g.tenants.reduce((m, t) => [m, t.wrap?.lastSeen ?? '', t.unwrap?.lastSeen ?? ''].sort().pop() as string, '');
    generations.sort((a, b) => Number(b.current) - Number(a.current) || last(b).localeCompare(last(a)));
    return { keyring, scope: 'replica', since: this.since, generations };
  }

  /** Tenants that read `keyId` of `keyring` at or after `since` (for refusing a retire). */
  readersSince(keyring: string, keyId: string, since: Date): string[] {
    const iso = since.toISOString();
    return [...this.entries.values()].filter((e) => e.keyring === keyring && e.keyId === keyId && e.unwrap && e.unwrap.lastSeen >= iso).map((e) => e.tenant).sort();
  }
}

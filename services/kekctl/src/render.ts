/** Output: JSON for scripts (`--output json`), aligned tables for people. */

export type Output = 'table' | 'json';

export function table(rows: ReadonlyArray<Record<string, unknown>>, columns: readonly string[]): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] as string).length)));
  const line = (vals: readonly string[]) => vals.map((v, i) => v.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

function cell(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

interface ProviderView {
  id: string;
  type?: string;
  role?: string;
  breaker?: unknown;
  health?: { up?: boolean; reason?: string; breaker?: string; isolated?: boolean };
  [k: string]: unknown;
}

export interface LifecycleView {
  currentSince?: string;
  keyAgeSeconds?: number;
  lastRotation?: { by: string; startedAt: string };
  rotationInProgress?: { by: string; replica: string; startedAt: string };
  schedule?: { periodSeconds: number; nextDue: string; overdue: boolean };
  retired?: Array<{ keyId: string; at: string; by: string; reason: string }>;
}

interface KeyringView {
  keyring: string;
  keyId?: string;
  lifecycle?: LifecycleView;
  healthy?: boolean;
  reason?: string;
  providers?: ProviderView[];
  [k: string]: unknown;
}

/** The fleet status as a person reads it: who leads, then one block per keyring with its providers. */
export function renderStatus(s: Record<string, unknown>): string {
  const out: string[] = [];
  const head = Object.entries(s).filter(([k, v]) => k !== 'keyrings' && (typeof v !== 'object' || v === null));
  if (head.length) out.push(head.map(([k, v]) => `${k}: ${cell(v)}`).join('   '));
  const fleet = s['fleet'] as { redis?: string; redisUp?: boolean; leaseHolder?: string; replicas?: Array<Record<string, unknown>> | null } | undefined;
  if (fleet) {
    out.push(`redis: ${fleet.redis ?? '-'} ${fleet.redisUp ? 'up' : 'DOWN'}   lease holder: ${fleet.leaseHolder || '-'}`);
    if (fleet.replicas) out.push(table(fleet.replicas, ['replica', 'alive', 'leader', 'epoch', 'version', 'seenAt']).replace(/^/gm, '  '));
  }
  for (const k of (s['keyrings'] as KeyringView[] | undefined) ?? []) {
    out.push('', `keyring ${k.keyring}  key_id ${k.keyId ?? '-'}  ${k.healthy ? 'HEALTHY' : 'UNHEALTHY'}${k.reason && k.reason !== 'ok' ? `: ${k.reason}` : ''}`);
    const extra = Object.entries(k).filter(([key, v]) => ['configuredActive', 'actingActive', 'pinned'].includes(key) && v !== undefined);
    if (extra.length) out.push(`  ${extra.map(([key, v]) => `${key}: ${cell(v)}`).join('   ')}`);
    if (k.lifecycle) out.push(`  ${renderLifecycle(k.lifecycle)}`);
    const providers: Array<Record<string, unknown>> = (k.providers ?? []).map((p) => ({
      ...p, up: p.health?.up, breaker: p.health?.breaker, isolated: p.health?.isolated, why: p.health?.up === false ? p.health.reason : undefined,
    }));
    const columns = ['id', 'type', 'role', 'up', ...['breaker', 'isolated'].filter((c) => providers.some((p) => p[c] !== undefined)), 'why'];
    out.push(table(providers, columns).replace(/^/gm, '  '));
  }
  return out.join('\n');
}

/** One line: key age, last rotation, the schedule, retired generations. */
export function renderLifecycle(l: LifecycleView): string {
  const parts = [`key age: ${l.keyAgeSeconds === undefined ? '-' : duration(l.keyAgeSeconds)}`];
  parts.push(`last rotation: ${l.lastRotation ? `${l.lastRotation.startedAt} (${l.lastRotation.by})` : '-'}`);
  if (l.rotationInProgress) parts.push(`ROTATING since ${l.rotationInProgress.startedAt} on ${l.rotationInProgress.replica}`);
  if (l.schedule) parts.push(`next rotation: ${l.schedule.nextDue}${l.schedule.overdue ? ' OVERDUE' : ''} (every ${duration(l.schedule.periodSeconds)})`);
  if (l.retired?.length) parts.push(`retired: ${l.retired.length}`);
  return parts.join('   ');
}

export function duration(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

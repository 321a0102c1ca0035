/**
 * kekctl's commands: each names its admin API call, its arguments and how its answer is shown. A command that
 * changes something prints what changed; `--output json` prints the broker's answer as it is.
 */
import { type AdminClient, CliError, EXIT } from './client';
import { DRILL_OPTIONS, drillCommand } from './drill';
import { renderLifecycle, renderStatus, table, type LifecycleView } from './render';

export interface Command {
  name: string;
  args: string;
  summary: string;
  /** Extra options this command takes (beyond the global ones). */
  options?: Record<string, { type: 'string' | 'boolean'; help: string }>;
  run(client: AdminClient, positionals: string[], opts: Record<string, string | boolean | undefined>): Promise<{ json: unknown; text: string; exitCode?: number }>;
}

function need(positionals: string[], n: number, usage: string): string[] {
  if (positionals.length !== n) throw new CliError(`usage: kekctl ${usage}`, EXIT.usage);
  return positionals;
}

const seg = encodeURIComponent;

interface OpUsage { count: number; lastSeen: string }
interface UsageReport {
  keyring: string;
  scope: string;
  partial?: string;
  since: string;
  generations: Array<{ keyId: string; current: boolean; tenants: Array<{ tenant: string; wrap?: OpUsage; unwrap?: OpUsage }> }>;
}

export const COMMANDS: Command[] = [
  {
    name: 'status',
    args: '',
    summary: 'fleet status: leader, keyrings (key_id, health), providers (role, breaker, isolation)',
    async run(c, p) {
      need(p, 0, 'status');
      const s = await c.request('GET', '/v1/admin/status');
      return { json: s, text: renderStatus(s) };
    },
  },
  {
    name: 'rotate',
    args: 'KEYRING',
    summary: 'rotate every provider key of KEYRING now (new generation, new key_id)',
    async run(c, p) {
      const [keyring] = need(p, 1, 'rotate KEYRING');
      const r = await c.request<{ previousKeyId?: string; keyId: string }>('POST', `/v1/admin/keyrings/${seg(keyring as string)}/rotate`);
      return { json: r, text: `keyring ${keyring} rotated: key_id ${r.previousKeyId ?? '-'} -> ${r.keyId}` };
    },
  },
  {
    name: 'failover',
    args: 'KEYRING --to PROVIDER [--pin]',
    summary: 'make PROVIDER the acting active of KEYRING (with --pin it stays until failback)',
    options: { to: { type: 'string', help: 'provider to make acting active' }, pin: { type: 'boolean', help: 'keep it until `kekctl failback`' } },
    async run(c, p, o) {
      const [keyring] = need(p, 1, 'failover KEYRING --to PROVIDER [--pin]');
      if (typeof o['to'] !== 'string') throw new CliError('usage: kekctl failover KEYRING --to PROVIDER [--pin]', EXIT.usage);
      const r = await c.request('POST', `/v1/admin/keyrings/${seg(keyring as string)}/failover`, { provider: o['to'], pin: o['pin'] === true });
      return { json: r, text: `keyring ${keyring}: acting active is now ${o['to']}${o['pin'] ? ' (pinned)' : ''}` };
    },
  },
  {
    name: 'failback',
    args: 'KEYRING',
    summary: 'release a pin or forced failover: KEYRING goes back to its configured active',
    async run(c, p) {
      const [keyring] = need(p, 1, 'failback KEYRING');
      const r = await c.request('POST', `/v1/admin/keyrings/${seg(keyring as string)}/failback`);
      return { json: r, text: `keyring ${keyring}: failed back to its configured order` };
    },
  },
  {
    name: 'isolate',
    args: 'PROVIDER',
    summary: 'send no traffic to PROVIDER (its keyrings fail over as if it were down)',
    async run(c, p) {
      const [provider] = need(p, 1, 'isolate PROVIDER');
      const r = await c.request('POST', `/v1/admin/providers/${seg(provider as string)}/isolate`);
      return { json: r, text: `provider ${provider} isolated` };
    },
  },
  {
    name: 'restore',
    args: 'PROVIDER',
    summary: 'end the isolation of PROVIDER',
    async run(c, p) {
      const [provider] = need(p, 1, 'restore PROVIDER');
      const r = await c.request('POST', `/v1/admin/providers/${seg(provider as string)}/restore`);
      return { json: r, text: `provider ${provider} restored` };
    },
  },
  {
    name: 'step-down',
    args: '',
    summary: 'ask the replica at --addr to give up leadership (another replica takes the lease)',
    async run(c, p) {
      need(p, 0, 'step-down');
      const r = await c.request('POST', '/v1/admin/leader/step-down');
      return { json: r, text: 'stepped down' };
    },
  },
  {
    name: 'usage',
    args: 'KEYRING',
    summary: 'who wrapped and unwrapped under which generation of KEYRING, and when last',
    async run(c, p) {
      const [keyring] = need(p, 1, 'usage KEYRING');
      const r = await c.request<UsageReport>('GET', `/v1/admin/keyrings/${seg(keyring as string)}/usage`);
      const rows = r.generations.flatMap((g) => (g.tenants.length ? g.tenants : [{ tenant: '' }]).map((t: UsageReport['generations'][0]['tenants'][0]) => ({
        key_id: g.keyId, current: g.current, tenant: t.tenant, wraps: t.wrap?.count ?? 0, last_wrap: t.wrap?.lastSeen, unwraps: t.unwrap?.count ?? 0, last_unwrap: t.unwrap?.lastSeen,
      })));
      const scope = r.scope === 'fleet' ? 'every replica (fleet-wide)' : `this replica only since ${r.since}${r.partial ? ` — PARTIAL: ${r.partial}` : ''}`;
      return { json: r, text: `keyring ${r.keyring} — usage seen by ${scope}
${table(rows, ['key_id', 'current', 'tenant', 'wraps', 'last_wrap', 'unwraps', 'last_unwrap'])}` };
    },
  },
  {
    name: 'retire',
    args: 'KEYRING KEY_ID [--force --reason TEXT]',
    summary: 'retire an old generation: its envelopes stop unwrapping (refused while a tenant still reads it)',
    options: { force: { type: 'boolean', help: 'retire although a tenant read it within retireQuietSeconds' }, reason: { type: 'string', help: 'why (required with --force; kept in the record and audit log)' } },
    async run(c, p, o) {
      const [keyring, keyId] = need(p, 2, 'retire KEYRING KEY_ID [--force --reason TEXT]');
      const body = { keyId, ...(o['force'] ? { force: true } : {}), ...(typeof o['reason'] === 'string' ? { reason: o['reason'] } : {}) };
      const r = await c.request<{ retired: { at: string; by: string; forced: boolean; overrode: string[] }; alreadyRetired: boolean }>('POST', `/v1/admin/keyrings/${seg(keyring as string)}/retire`, body);
      const text = r.alreadyRetired
        ? `${keyId} was already retired (at ${r.retired.at} by ${r.retired.by})`
        : `${keyId} retired${r.retired.forced ? ` (forced over: ${r.retired.overrode.join(', ') || 'no readers'})` : ''}: its envelopes no longer unwrap`;
      return { json: r, text };
    },
  },
  {
    name: 'keyring',
    args: 'KEYRING',
    summary: 'one keyring: key_id, key age, last rotation, rotation schedule, retired generations',
    async run(c, p) {
      const [keyring] = need(p, 1, 'keyring KEYRING');
      const r = await c.request<{ keyId?: string; lifecycle: LifecycleView }>('GET', `/v1/admin/keyrings/${seg(keyring as string)}`);
      const retired = (r.lifecycle.retired ?? []).map((x) => ({ key_id: x.keyId, at: x.at, by: x.by, reason: x.reason }));
      return { json: r, text: `keyring ${keyring}  key_id ${r.keyId ?? '-'}\n  ${renderLifecycle(r.lifecycle)}${retired.length ? `\nretired generations:\n${table(retired, ['key_id', 'at', 'by', 'reason'])}` : ''}` };
    },
  },
  {
    name: 'flush',
    args: 'KEYRING [--tenant T]',
    summary: 'drop cached keys of KEYRING (or of one tenant in it) on every replica; the next calls go to the KMS',
    options: { tenant: { type: 'string', help: 'only this tenant\'s entries' } },
    async run(c, p, o) {
      const [keyring] = need(p, 1, 'flush KEYRING [--tenant T]');
      const body = { keyring, ...(typeof o['tenant'] === 'string' ? { tenant: o['tenant'] } : {}) };
      const r = await c.request<{ droppedHere: number; publishedToFleet: boolean }>('POST', '/v1/admin/cache/invalidate', body);
      return { json: r, text: `dropped ${r.droppedHere} entries on this replica; ${r.publishedToFleet ? 'sent to every replica' : 'NOT sent to the other replicas (no Redis, or Redis down): flush each replica'}` };
    },
  },
  {
    name: 'drill',
    args: 'run|list|show|abort ...',
    summary: 'failover drills: run (with live progress), list, show [--html FILE], abort',
    options: DRILL_OPTIONS,
    run: drillCommand,
  },
];

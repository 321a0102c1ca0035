/**
 * `kekctl drill run|list|show|abort`. `run` starts a drill and follows it to the end with live progress (a bar
 * and the current failures and latency on a terminal, plain lines otherwise), then prints the verdict and exits
 * 0 if it passed, 4 if it ran and failed, 1 if the broker refused to start it.
 */
import { promises as fs } from 'node:fs';
import { type AdminClient, CliError, EXIT } from './client';
import { table } from './render';

interface PhaseSummary { calls: number; failed: number; p50Ms: number | null; p99Ms: number | null }
interface Report {
  id: string;
  state: 'running' | 'passed' | 'failed' | 'aborted';
  phase: string;
  progress: number;
  verdict: string;
  startedAt: string;
  spec: { scenario: string; keyring: string; provider: string; durationSeconds: number };
  timeToFailoverMs: number | null;
  timeToRecoveryMs: number | null;
  phases: Record<'before' | 'during' | 'after', PhaseSummary>;
  timeline: Array<{ second: number; calls: number; failed: number; p50Ms: number | null }>;
}

export const DRILL_OPTIONS = {
  scenario: { type: 'string', help: 'provider-outage | provider-latency | provider-throttle | broker-failover | redis-outage' },
  keyring: { type: 'string', help: 'keyring to drill' },
  tenant: { type: 'string', help: 'tenant the canary traffic runs as' },
  provider: { type: 'string', help: 'provider to fault (default: the keyring\'s configured active)' },
  duration: { type: 'string', help: 'seconds of fault (default 30)' },
  warmup: { type: 'string', help: 'seconds of canary traffic before the fault (default 5)' },
  recovery: { type: 'string', help: 'seconds of canary traffic after the fault (default 15)' },
  rate: { type: 'string', help: 'canary wrap+unwrap pairs per second (default 5)' },
  'latency-ms': { type: 'string', help: 'added latency for provider-latency (default 2000)' },
  'throttle-ratio': { type: 'string', help: 'share of calls throttled for provider-throttle (default 0.5)' },
  force: { type: 'boolean', help: 'run even with no healthy passive (needs --reason)' },
  reason: { type: 'string', help: 'why (recorded in the report)' },
  detach: { type: 'boolean', help: 'start it and return at once (print its id)' },
  html: { type: 'string', help: 'with show: write the HTML report to this file' },
} as const;

const num = (v: unknown, flag: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new CliError(`--${flag} must be a number, not "${String(v)}"`, EXIT.usage);
  return n;
};

const USAGE = 'usage: kekctl drill run --scenario S --keyring K --tenant T [options] | drill list | drill show ID [--html FILE] | drill abort ID';

function summaryText(r: Report): string {
  const ph = (name: string, p: PhaseSummary) => ({ phase: name, calls: p.calls, failed: p.failed, p50_ms: p.p50Ms, p99_ms: p.p99Ms });
  return [
    `drill ${r.id}  ${r.spec.scenario} on ${r.spec.provider} (keyring ${r.spec.keyring})  ${r.state.toUpperCase()}: ${r.verdict}`,
    `time to failover: ${r.timeToFailoverMs === null ? 'none observed' : `${r.timeToFailoverMs} ms`}   time to recovery: ${r.timeToRecoveryMs === null ? 'not within the window' : `${r.timeToRecoveryMs} ms`}`,
    table([ph('before', r.phases.before), ph('during', r.phases.during), ph('after', r.phases.after)], ['phase', 'calls', 'failed', 'p50_ms', 'p99_ms']),
  ].join('\n');
}

function progressLine(r: Report, tty: boolean): string {
  const last = r.timeline[r.timeline.length - 1];
  const failed = r.phases.before.failed + r.phases.during.failed + r.phases.after.failed;
  const now = `phase ${r.phase.padEnd(6)} failed ${failed}  last second: ${last ? `${last.calls} calls, p50 ${last.p50Ms ?? '-'} ms` : '-'}`;
  if (!tty) return `${new Date().toISOString()} drill ${r.id} ${Math.round(r.progress * 100)}% ${now}`;
  const width = 30;
  const done = Math.round(r.progress * width);
  return `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${String(Math.round(r.progress * 100)).padStart(3)}%  ${now}`;
}

async function follow(c: AdminClient, id: string): Promise<Report> {
  const tty = Boolean(process.stderr.isTTY);
  let lastPlain = 0;
  for (;;) {
    const r = await c.request<Report>('GET', `/v1/admin/drills/${id}`);
    if (tty) process.stderr.write(`\r${progressLine(r, true)}\x1b[K`);
    else if (Date.now() - lastPlain >= 5000 || r.state !== 'running') {
      process.stderr.write(`${progressLine(r, false)}\n`);
      lastPlain = Date.now();
    }
    if (r.state !== 'running') {
      if (tty) process.stderr.write('\n');
      return r;
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

export async function drillCommand(c: AdminClient, p: string[], o: Record<string, string | boolean | undefined>): Promise<{ json: unknown; text: string; exitCode?: number }> {
  const [sub, id] = p;
  if (sub === 'list' && p.length === 1) {
    const { drills } = await c.request<{ drills: Report[] }>('GET', '/v1/admin/drills');
    const rows = drills.map((d) => ({ id: d.id, state: d.state, scenario: d.spec.scenario, keyring: d.spec.keyring, provider: d.spec.provider, started: d.startedAt, verdict: d.verdict }));
    return { json: drills, text: table(rows, ['id', 'state', 'scenario', 'keyring', 'provider', 'started', 'verdict']) };
  }
  if (sub === 'show' && id && p.length === 2) {
    const r = await c.request<Report>('GET', `/v1/admin/drills/${encodeURIComponent(id)}`);
    if (typeof o['html'] === 'string') {
      const html = await c.text(`/v1/admin/drills/${encodeURIComponent(id)}/report.html`);
      await fs.writeFile(o['html'], html);
    }
    return { json: r, text: summaryText(r) + (typeof o['html'] === 'string' ? `\nHTML report written to ${o['html']}` : '') };
  }
  if (sub === 'abort' && id && p.length === 2) {
    const r = await c.request<Report>('DELETE', `/v1/admin/drills/${encodeURIComponent(id)}`);
    return { json: r, text: `drill ${r.id} aborted; fault lifted.\n${summaryText(r)}` };
  }
  if (sub === 'run' && p.length === 1) {
    for (const f of ['scenario', 'keyring', 'tenant']) if (typeof o[f] !== 'string') throw new CliError(`drill run needs --${f}\n${USAGE}`, EXIT.usage);
    const body = Object.fromEntries(Object.entries({
      scenario: o['scenario'], keyring: o['keyring'], tenant: o['tenant'], provider: o['provider'],
      durationSeconds: num(o['duration'], 'duration'), warmupSeconds: num(o['warmup'], 'warmup'), recoverySeconds: num(o['recovery'], 'recovery'),
      canaryPerSecond: num(o['rate'], 'rate'), latencyMs: num(o['latency-ms'], 'latency-ms'), throttleRatio: num(o['throttle-ratio'], 'throttle-ratio'),
      force: o['force'] === true ? true : undefined, reason: o['reason'],
    }).filter(([, v]) => v !== undefined));
    const started = await c.request<Report>('POST', '/v1/admin/drills', body);
    if (o['detach']) return { json: started, text: `drill ${started.id} started; follow it with: kekctl drill show ${started.id}` };
    const r = await follow(c, started.id);
    return { json: r, text: summaryText(r), exitCode: r.state === 'passed' ? EXIT.ok : EXIT.drillFailed };
  }
  throw new CliError(USAGE, EXIT.usage);
}

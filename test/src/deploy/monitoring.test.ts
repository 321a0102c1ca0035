/**
 * deploy/monitoring: the PrometheusRule alerts pass `promtool check rules` and their unit tests
 * (`promtool test rules`: each alert fires on a series that should fire it and not on one that should
 * not), and every metric the rules and the Grafana dashboard use is exported by a running broker or shim.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { freePort, startRedis, tempDir, type RedisServer } from '@kekbroker/testkit';
import { REPO, allocateBrokerPorts, devBrokerConfig, startBroker, startShim, type BrokerHandle, type Proc } from '../helpers/processes';

const MONITORING = path.join(REPO, 'deploy/monitoring');
/** Series Prometheus makes itself, not exported by any kekbroker process. */
const PROMETHEUS_SERIES = new Set(['up']);

interface RuleDoc {
  metadata: { name: string };
  spec: { groups: { name: string; rules: { alert?: string; expr: string }[] }[] };
}

async function ruleDocs(): Promise<RuleDoc[]> {
  const dir = path.join(MONITORING, 'rules');
  return Promise.all((await fs.readdir(dir)).filter((f) => f.endsWith('.yaml')).sort().map(async (f) => parse(await fs.readFile(path.join(dir, f), 'utf8')) as RuleDoc));
}

function promtool(args: string[], cwd: string): string {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool not found (${r.error.message}): install Debian's prometheus package, e.g. run .ci/setup as root`);
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

/** Metric names in PromQL text: kekbroker_* identifiers, plus Prometheus' own series used bare. */
function metricNames(promql: string): string[] {
  const names = [...promql.matchAll(/\b(kekbroker_[a-z0-9_]+)\b/g)].map((m) => m[1] as string);
  for (const s of PROMETHEUS_SERIES) if (new RegExp(`\\b${s}\\{`).test(promql)) names.push(s);
  return names;
}

/** Every sample name a /metrics page can produce, from its # TYPE lines (present before any sample). */
function exportedNames(exposition: string): Set<string> {
  const out = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [name, type] = [m[1] as string, m[2] as string];
    out.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) out.add(name + s);
  }
  return out;
}

describe('deploy/monitoring', { timeout: 120_000 }, () => {
  let dir: string;
  let broker: BrokerHandle | undefined;
  let shim: { proc: Proc; socket: string } | undefined;
  let exported: Set<string> | undefined;
  let redis: RedisServer | undefined;

  before(async () => {
    dir = await tempDir();
  });
  after(async () => {
    await shim?.proc.kill();
    await broker?.proc.kill();
    await redis?.stop();
  });

  it('promtool check rules and promtool test rules pass on every PrometheusRule', async () => {
    const docs = await ruleDocs();
    assert.ok(docs.length >= 2);
    for (const d of docs) await fs.writeFile(path.join(dir, `${d.metadata.name.replace(/^kekbroker-/, '')}.rules.yaml`), stringify(d.spec));
    const tests = (await fs.readdir(path.join(MONITORING, 'rule-tests'))).filter((f) => f.endsWith('.test.yaml'));
    for (const t of tests) await fs.copyFile(path.join(MONITORING, 'rule-tests', t), path.join(dir, t));
    const ruleFiles = (await fs.readdir(dir)).filter((f) => f.endsWith('.rules.yaml'));
    promtool(['check', 'rules', ...ruleFiles], dir);
    const out = promtool(['test', 'rules', ...tests], dir);
    assert.doesNotMatch(out, /FAILED/);
    // Every alert has a unit test that expects it to fire.
    const tested = new Set<string>();
    for (const t of tests) {
      const doc = parse(await fs.readFile(path.join(dir, t), 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] };
      for (const c of doc.tests) for (const a of c.alert_rule_test ?? []) if (a.exp_alerts.length) tested.add(a.alertname);
    }
    const alerts = docs.flatMap((d) => d.spec.groups.flatMap((g) => g.rules.map((r) => r.alert).filter((a): a is string => Boolean(a))));
    assert.deepEqual(alerts.filter((a) => !tested.has(a)), [], 'alerts without a firing test');
  });

  it('every metric in the rules and the dashboard is exported by a running broker or shim', async () => {
    // Every optional part on, so each metric a doc or rule may name is registered: Redis (HA) and transit.
    redis = await startRedis();
    const ports = await allocateBrokerPorts();
    const extra = `redis: { nodes: ["${redis.address}"] }
transit:
  enabled: true
  listen: "127.0.0.1:${await freePort()}"
  keys: { app: { keyring: default } }
  identities: [{ tokenSha256: "${'0'.repeat(64)}", tenant: dev }]
`;
    broker = await startBroker(dir, devBrokerConfig(ports, extra), ports, 'admin-secret-monitoring');
    const shimMetricsPort = await freePort();
    shim = await startShim(dir, ['--insecure-dev-tenant', 'dev', '--broker', `127.0.0.1:${ports.grpc}`, '--metrics-listen', `127.0.0.1:${shimMetricsPort}`]);
    exported = new Set([
      ...exportedNames(await (await fetch(`http://127.0.0.1:${ports.http}/metrics`)).text()),
      ...exportedNames(await (await fetch(`http://127.0.0.1:${shimMetricsPort}/metrics`)).text()),
      ...PROMETHEUS_SERIES,
    ]);
    const used = new Map<string, string>();
    for (const d of await ruleDocs()) for (const g of d.spec.groups) for (const r of g.rules) for (const n of metricNames(r.expr)) used.set(n, `rule ${r.alert ?? ''}`);
    const dashboard = JSON.parse(await fs.readFile(path.join(MONITORING, 'grafana/kekbroker.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
    for (const p of dashboard.panels) for (const t of p.targets ?? []) for (const n of metricNames(t.expr)) used.set(n, `panel "${p.title}"`);
    assert.ok(used.size >= 10, `found only ${used.size} metric names`);
    const missing = [...used].filter(([n]) => !exported?.has(n)).map(([n, where]) => `${n} (${where})`);
    assert.deepEqual(missing, [], 'metrics used but not exported');
  });

  it('every metric name in README and docs/ is exported (the operations table lists them without the prefix)', async () => {
    assert.ok(exported, 'needs the previous test');
    const files = ['README.md', ...(await fs.readdir(path.join(REPO, 'docs'), { recursive: true })).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const wrong: string[] = [];
    for (const f of files) {
      const text = await fs.readFile(path.join(REPO, f), 'utf8');
      for (const n of metricNames(text)) if (!exported.has(n) && !/_$/.test(n)) wrong.push(`${f}: ${n}`);
    }
    const ops = await fs.readFile(path.join(REPO, 'docs/operations.md'), 'utf8');
    const table = ops.slice(ops.indexOf('## Metrics'), ops.indexOf('\n## ', ops.indexOf('## Metrics') + 5));
    let rows = 0;
    for (const row of table.split('\n').filter((l) => l.startsWith('| `'))) {
      const names = [...(row.split('|')[1] ?? '').matchAll(/`([a-z0-9_*]+)`/g)].map((m) => m[1] as string).filter((n) => !n.includes('*'));
      for (const n of names) {
        rows++;
        if (!exported.has(`kekbroker_${n}`)) wrong.push(`docs/operations.md metrics table: ${n}`);
      }
    }
    assert.ok(rows >= 10, `read ${rows} names from the metrics table`);
    assert.deepEqual(wrong, [], 'metric names in docs that /metrics does not export');
  });
});

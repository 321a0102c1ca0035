/**
 * Failover drills end to end: a real broker whose keyring has two providers, driven through kekctl and the
 * admin API. The outage drill must pass with 0 failed canary calls and a measured failover; a drill that would
 * cause a real outage is refused; an aborted drill lifts its fault; the HTML report renders in Chromium.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@kekbroker/testkit';
import { kekctlEnv, kekctlSync } from '../helpers/kekctl';
import { REPO, allocateBrokerPorts, startBroker, type BrokerHandle } from '../helpers/processes';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

interface Report {
  id: string;
  state: string;
  verdict: string;
  timeToFailoverMs: number | null;
  wrongAnswers: number;
  phases: Record<'before' | 'during' | 'after', { calls: number; failed: number }>;
  transitions: Array<{ actingActive: string | null }>;
}

describe('failover drills', { timeout: 240_000 }, () => {
  let broker: BrokerHandle;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const kekctl = (...args: string[]) => kekctlSync(env, args, 120_000);

  before(async () => {
    dir = await tempDir();
    const ports = await allocateBrokerPorts();
    const config = `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
providers:
  local-a: { type: local, keystore: ./a.json }
  local-b: { type: local, keystore: ./b.json }
  local-c: { type: local, keystore: ./c.json }
keyrings:
  pair: { providers: [local-a, local-b] }
  single: { providers: [local-c] }
tenants:
  canary: { keyrings: [pair, single] }
log: { level: info }
`;
    broker = await startBroker(dir, config, ports, 'admin-secret-drills');
    env = kekctlEnv(ports.admin, path.join(dir, 'admin.token'));
  });
  after(async () => {
    await broker?.proc.kill();
  });

  it('provider-outage on the active: 0 failed canary calls, every answer right, failover measured', () => {
    const r = kekctl('drill', 'run', '--scenario', 'provider-outage', '--keyring', 'pair', '--tenant', 'canary', '--warmup', '2', '--duration', '6', '--recovery', '3', '--rate', '10', '-o', 'json');
    const report = JSON.parse(r.out) as Report;
    assert.equal(report.state, 'passed', `${report.verdict}\n${r.err}`);
    assert.equal(r.code, 0);
    assert.equal(report.wrongAnswers, 0);
    for (const phase of ['before', 'during', 'after'] as const) {
      assert.ok(report.phases[phase].calls > 0, `canary traffic in phase ${phase}`);
      assert.equal(report.phases[phase].failed, 0, `no failed canary call ${phase}`);
    }
    assert.ok(report.timeToFailoverMs !== null, 'the acting active moved');
    assert.ok(report.transitions.some((t) => t.actingActive === 'local-b'), 'local-b acted as active');
  });

  it('a drill on a keyring with no healthy passive is refused (exit 1) and names the risk', () => {
    const r = kekctl('drill', 'run', '--scenario', 'provider-outage', '--keyring', 'single', '--tenant', 'canary', '--duration', '2');
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /no healthy provider besides local-c: this drill would cause a real outage/);
  });

  it('aborting a drill lifts the fault at once', async () => {
    const started = kekctl('drill', 'run', '--scenario', 'provider-outage', '--keyring', 'pair', '--tenant', 'canary', '--warmup', '0', '--duration', '600', '--detach', '-o', 'json');
    assert.equal(started.code, 0, started.err);
    const { id } = JSON.parse(started.out) as Report;
    await new Promise((res) => setTimeout(res, 1500));
    const aborted = kekctl('drill', 'abort', id, '-o', 'json');
    assert.equal(aborted.code, 0, aborted.err);
    assert.equal((JSON.parse(aborted.out) as Report).state, 'aborted');
    const st = JSON.parse(kekctl('status', '-o', 'json').out) as { keyrings: Array<{ keyring: string; providers: Array<{ id: string; drillFault?: unknown }> }> };
    const pair = st.keyrings.find((k) => k.keyring === 'pair');
    assert.ok(pair);
    // With the fault lifted, a drill that needs local-a healthy runs and passes again.
    const again = kekctl('drill', 'run', '--scenario', 'provider-latency', '--keyring', 'pair', '--tenant', 'canary', '--warmup', '1', '--duration', '2', '--recovery', '1', '--latency-ms', '100', '-o', 'json');
    assert.equal((JSON.parse(again.out) as Report).state, 'passed', again.err);
  });

  it('drill list, show and the HTML report (rendered in headless Chromium with its chart)', async (t) => {
    const list = JSON.parse(kekctl('drill', 'list', '-o', 'json').out) as Report[];
    assert.ok(list.length >= 3);
    const first = list[list.length - 1] as Report;
    const htmlFile = path.join(dir, 'report.html');
    const show = kekctl('drill', 'show', first.id, '--html', htmlFile);
    assert.equal(show.code, 0, show.err);
    assert.match(show.out, /PASSED|FAILED/);
    const html = await fs.readFile(htmlFile, 'utf8');
    assert.match(html, /<svg[^>]+aria-label="canary latency and failures over time"/);
    assert.match(html, /<path fill="none" stroke="#2b6cb0" stroke-width="2" d="M[\d.]+,[\d.]+ /, 'the p50 line has points');
    if (!CHROMIUM) return t.skip('chromium is not installed here (scripts/ci-setup.sh installs it): screenshot not taken');
    const png = path.join(dir, 'report.png');
    const r = spawnSync(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-data-dir=${path.join(dir, 'chromium')}`, `--screenshot=${png}`, '--window-size=1000,1200', `file://${htmlFile}`], { encoding: 'utf8', timeout: 60_000 });
    assert.ok(existsSync(png), `chromium wrote no screenshot: ${r.stderr}`);
    const bytes = await fs.readFile(png);
    assert.equal(bytes.subarray(1, 4).toString(), 'PNG');
    assert.ok(bytes.length > 20_000, `a rendered page with a chart, not a blank one (${bytes.length} bytes)`);
    await fs.copyFile(png, path.join(REPO, 'test', 'dist', 'drill-report.png')).catch(() => undefined);
  });
});

/**
 * kekctl end to end against a real broker process: JSON output parsed, table output readable, and the exit
 * codes scripts rely on (0 done, 1 refused, 2 bad command line, 3 unreachable or token refused).
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@kekbroker/testkit';
import { randomBytes } from 'node:crypto';
import { brokerClient, tenantMd, unary } from '../helpers/broker-client';
import { kekctlEnv, kekctlSync } from '../helpers/kekctl';
import { allocateBrokerPorts, devBrokerConfig, startBroker, type BrokerHandle } from '../helpers/processes';


describe('kekctl against a running broker', { timeout: 120_000 }, () => {
  let broker: BrokerHandle;
  let tokenFile: string;
  let env: NodeJS.ProcessEnv;

  const kekctl = (...args: string[]) => kekctlSync(env, args);

  before(async () => {
    const dir = await tempDir();
    const ports = await allocateBrokerPorts();
    broker = await startBroker(dir, devBrokerConfig(ports), ports, 'admin-secret-kekctl');
    tokenFile = path.join(dir, 'admin.token');
    env = kekctlEnv(ports.admin, tokenFile);
  });
  after(async () => {
    await broker?.proc.kill();
  });

  it('the broker said loudly that it created a new local keystore', async () => {
    await broker.proc.waitForLogLine('the new-keystore warning', /"level":"warn".*created a NEW local keystore \S+ \(id [0-9a-f]+, mode 0600\).*back it up now/);
  });

  it('--help, --version and a bad command line (exit 2)', () => {
    const help = kekctl('--help');
    assert.equal(help.code, 0);
    for (const c of ['status', 'rotate', 'keyring', 'retire', 'failover', 'failback', 'isolate', 'restore', 'step-down', 'usage', 'flush', 'drill']) assert.match(help.out, new RegExp(`\\n  ${c}`));
    assert.match(kekctl('--version').out, /^\d+\.\d+\.\d+/);
    assert.match(kekctl('rotate', '--help').out, /kekctl rotate KEYRING/);
    const bad = kekctl('frobnicate');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /unknown command "frobnicate"/);
    assert.equal(kekctl('status', '--bogus').code, 2);
    assert.equal(kekctl('rotate').code, 2, 'missing argument');
  });

  it('status: JSON for scripts, a table for people', () => {
    const j = kekctl('status', '-o', 'json');
    assert.equal(j.code, 0, j.err);
    const s = JSON.parse(j.out) as { keyrings: Array<{ keyring: string; keyId: string; healthy: boolean }> };
    const names = s.keyrings.map((k) => k.keyring).sort();
    assert.deepEqual(names, ['default', 'other']);
    assert.ok(s.keyrings.every((k) => k.healthy && k.keyId.startsWith(`kekbroker/${k.keyring}/`)));
    const t = kekctl('status');
    assert.equal(t.code, 0);
    assert.match(t.out, /keyring default {2}key_id kekbroker\/default\/\S+ {2}HEALTHY/);
    assert.match(t.out, /ID +TYPE +ROLE/);
  });

  it('rotate changes the key_id, and an unknown keyring is refused with exit 1', () => {
    const before = (JSON.parse(kekctl('status', '-o', 'json').out) as { keyrings: Array<{ keyring: string; keyId: string }> }).keyrings.find((k) => k.keyring === 'other');
    const r = kekctl('rotate', 'other', '-o', 'json');
    assert.equal(r.code, 0, r.err);
    const out = JSON.parse(r.out) as { previousKeyId: string; keyId: string };
    assert.equal(out.previousKeyId, before?.keyId);
    assert.notEqual(out.keyId, out.previousKeyId);
    const missing = kekctl('rotate', 'no-such-keyring');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no keyring named "no-such-keyring"/);
  });

  it('usage: wraps and unwraps per generation and tenant', async () => {
    const client = brokerClient(broker.ports.grpc);
    try {
      const sealed: Array<{ ciphertext: Buffer; key_id: string }> = [];
      for (let i = 0; i < 3; i++) sealed.push(await unary(client, 'Wrap', { keyring: 'default', plaintext: randomBytes(32) }, tenantMd('dev')));
      for (const s of sealed.slice(0, 2)) await unary(client, 'Unwrap', { keyring: 'default', ciphertext: s.ciphertext }, tenantMd('dev'));
      const r = kekctl('usage', 'default', '-o', 'json');
      assert.equal(r.code, 0, r.err);
      type Op = { count: number; lastSeen: string };
      const u = JSON.parse(r.out) as { keyring: string; scope: string; generations: Array<{ keyId: string; current: boolean; tenants: Array<{ tenant: string; wrap?: Op; unwrap?: Op }> }> };
      assert.equal(u.keyring, 'default');
      assert.equal(u.scope, 'replica');
      const current = u.generations.find((g) => g.current);
      assert.equal(current?.keyId, sealed[0]?.key_id);
      const dev = current?.tenants.find((t) => t.tenant === 'dev');
      assert.equal(dev?.wrap?.count, 3);
      assert.equal(dev?.unwrap?.count, 2);
    } finally {
      client.close();
    }
    assert.match(kekctl('usage', 'default').out, /KEY_ID +CURRENT +TENANT/);
  });

  it('flush drops the keyring\'s cached keys (this replica only without Redis, and says so); keyring shows the lifecycle', () => {
    const r = kekctl('flush', 'default', '-o', 'json');
    assert.equal(r.code, 0, r.err);
    const out = JSON.parse(r.out) as { droppedHere: number; publishedToFleet: boolean };
    assert.ok(out.droppedHere >= 1, 'the usage test above cached at least one key');
    assert.equal(out.publishedToFleet, false);
    assert.match(kekctl('flush', 'default').out, /NOT sent to the other replicas/);
    assert.equal(kekctl('flush', 'nope').code, 1);
    const k = kekctl('keyring', 'default');
    assert.equal(k.code, 0, k.err);
    assert.match(k.out, /key_id kekbroker\/default\/\S+\n {2}key age: \d+s {3}last rotation: -/);
  });

  it('failover --pin / failback, isolate / restore, step-down: each changes what status shows, or says why not', () => {
    type Status = { keyrings: Array<{ keyring: string; pinned: boolean; actingActive: string }>; providers: Array<{ id: string; isolated: boolean }> };
    const status = () => JSON.parse(kekctl('status', '-o', 'json').out) as Status;
    const pinned = () => status().keyrings.find((k) => k.keyring === 'default')?.pinned;
    let r = kekctl('failover', 'default', '--to', 'local', '--pin');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /acting active is now local \(pinned\)/);
    assert.equal(pinned(), true);
    r = kekctl('failback', 'default');
    assert.equal(r.code, 0, r.err);
    assert.equal(pinned(), false);
    assert.equal(kekctl('failover', 'default', '--to', 'nope').code, 1, 'an unknown provider is refused');
    r = kekctl('isolate', 'local');
    assert.equal(r.code, 0, r.err);
    assert.equal(status().providers.find((p) => p.id === 'local')?.isolated, true);
    r = kekctl('restore', 'local');
    assert.equal(r.code, 0, r.err);
    assert.equal(status().providers.find((p) => p.id === 'local')?.isolated, false);
    r = kekctl('step-down');
    assert.equal(r.code, 1, 'a lone replica without Redis cannot step down');
    assert.match(r.err, /no redis configured/);
  });

  it('every admin action left an audit line naming who, what and the result', async () => {
    // The last action's line may still be on its way to the log file.
    await broker.proc.waitForLogLine('the audit line of the last action', (l) => l.includes('"stream":"audit"') && l.includes('/v1/admin/leader/step-down'));
    const lines = (await broker.proc.logs()).split('\n').filter((l) => l.includes('"stream":"audit"') && l.includes('"op":"admin"'));
    const seen = lines.map((l) => JSON.parse(l) as { route: string; who: string; status: number });
    for (const route of ['/v1/admin/keyrings/:name/rotate', '/v1/admin/keyrings/:name/failover', '/v1/admin/keyrings/:name/failback', '/v1/admin/providers/:id/isolate', '/v1/admin/providers/:id/restore', '/v1/admin/leader/step-down']) {
      assert.ok(seen.some((a) => a.route === route && /^admin-token:[0-9a-f]{8}$/.test(a.who)), `audit line for ${route}`);
    }
    assert.ok(seen.some((a) => a.route === '/v1/admin/leader/step-down' && a.status === 409), 'refusals are audited with their status');
  });

  it('a wrong token or an unreachable address exits 3 and says what to check', async () => {
    const wrong = path.join(path.dirname(tokenFile), 'wrong.token');
    await fs.writeFile(wrong, 'not-the-token');
    const denied = kekctl('status', '--token-file', wrong);
    assert.equal(denied.code, 3);
    assert.match(denied.err, /refused the token/);
    const down = kekctl('status', '--addr', '127.0.0.1:1');
    assert.equal(down.code, 3);
    assert.match(down.err, /cannot reach the admin API/);
  });
});

/**
 * kekctl end to end against a real broker process: JSON output parsed, table output readable, and the exit
 * codes scripts rely on (0 done, 1 refused, 2 bad command line, 3 unreachable or token refused).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@kekbroker/testkit';
import { REPO, allocateBrokerPorts, devBrokerConfig, startBroker, type BrokerHandle } from '../helpers/processes';

const KEKCTL = path.join(REPO, 'services/kekctl/dist/main.js');

describe('kekctl against a running broker', { timeout: 120_000 }, () => {
  let broker: BrokerHandle;
  let tokenFile: string;
  let env: NodeJS.ProcessEnv;

  const kekctl = (...args: string[]) => {
    const r = spawnSync(process.execPath, [KEKCTL, ...args], { env, encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  before(async () => {
    const dir = await tempDir();
    const ports = await allocateBrokerPorts();
    broker = await startBroker(dir, devBrokerConfig(ports), ports, 'admin-secret-kekctl');
    tokenFile = path.join(dir, 'admin.token');
    env = { ...process.env, KEKBROKER_ADMIN_ADDR: `127.0.0.1:${ports.admin}`, KEKBROKER_ADMIN_TOKEN_FILE: tokenFile, KEKCTL_CONFIG: '' };
  });
  after(async () => {
    await broker?.proc.kill();
  });

  it('--help, --version and a bad command line (exit 2)', () => {
    const help = kekctl('--help');
    assert.equal(help.code, 0);
    for (const c of ['status', 'rotate', 'failover', 'failback', 'isolate', 'restore', 'step-down']) assert.match(help.out, new RegExp(`\\n  ${c}`));
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

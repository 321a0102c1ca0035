/**
 * The local keystore never loses a key version, with real broker processes and real files:
 *  - two brokers on one keystore rotating at once, 50 rounds: every wrap from either decrypts after both restart;
 *  - the keystore deleted, emptied or chmodded under a running broker: unhealthy within a refresh, with the
 *    reason in the log, the admin status and the metrics; a restart refuses with restore steps; nothing lost;
 *  - a full disk (a 64 KiB tmpfs): no temp file and no partial keystore, ever.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { tempDir } from '@kekbroker/testkit';
import { brokerClient, tenantMd, unary } from '../helpers/broker-client';
import { grpcError } from '../helpers/kms-client';
import {
  BROKER_MAIN, LOG_FILES, adminPost, allocateBrokerPorts, devBrokerConfig, restartBroker, startBroker, startProcess, waitFor, type BrokerHandle, type BrokerPorts,
} from '../helpers/processes';
import { assertNoSeedsInLogs, recordSeed } from '../helpers/seeds';

const FAST_REFRESH = 'health: { refreshSeconds: 1 }\n';

interface Sealed {
  seed: Buffer;
  ciphertext: Buffer;
}

async function wrap(h: BrokerHandle, keyring = 'default'): Promise<Sealed> {
  const api = brokerClient(h.ports.grpc);
  try {
    const seed = recordSeed(randomBytes(32));
    const r = await unary<object, { ciphertext: Buffer }>(api, 'Wrap', { keyring, plaintext: Buffer.from(seed) }, tenantMd('dev'));
    return { seed, ciphertext: r.ciphertext };
  } finally {
    api.close();
  }
}

async function assertAllUnwrap(h: BrokerHandle, sealed: readonly Sealed[]): Promise<void> {
  const api = brokerClient(h.ports.grpc);
  try {
    for (const [i, s] of sealed.entries()) {
      const r = await unary<object, { plaintext: Buffer }>(api, 'Unwrap', { keyring: 'default', ciphertext: s.ciphertext }, tenantMd('dev'));
      assert.deepEqual(r.plaintext, s.seed, `wrap #${i}`);
    }
  } finally {
    api.close();
  }
}

async function adminStatus(h: BrokerHandle): Promise<{ keyrings: Array<{ keyring: string; healthy: boolean; reason: string }> }> {
  const r = await fetch(`http://127.0.0.1:${h.ports.admin}/v1/admin/status`, { headers: { authorization: `Bearer ${h.adminToken}` } });
  return (await r.json()) as { keyrings: Array<{ keyring: string; healthy: boolean; reason: string }> };
}

/** Start a broker that must refuse to start; returns what it printed. */
async function startRefused(dir: string, configFile: string): Promise<string> {
  const p = startProcess(BROKER_MAIN, ['--config', configFile], path.join(dir, `refused-${Date.now()}.log`));
  const code = await waitFor('the refused broker to exit', async () => (p.alive ? undefined : { code: p.child.exitCode }), 20_000);
  assert.notEqual(code.code, 0);
  return p.logs();
}

describe('local keystore: two brokers rotating one keystore', { timeout: 240_000 }, () => {
  const brokers: BrokerHandle[] = [];
  after(async () => {
    for (const b of brokers) await b.proc.kill();
  });

  it('50 concurrent rotation rounds: every wrap from either broker decrypts after both restart', async () => {
    const dir = await tempDir();
    const ports: BrokerPorts[] = [await allocateBrokerPorts(), await allocateBrokerPorts()];
    brokers.push(await startBroker(dir, devBrokerConfig(ports[0] as BrokerPorts), ports[0] as BrokerPorts, 'admin-secret-ks', 'a'));
    brokers.push(await startBroker(dir, devBrokerConfig(ports[1] as BrokerPorts), ports[1] as BrokerPorts, 'admin-secret-ks', 'b'));
    const [a, b] = brokers as [BrokerHandle, BrokerHandle];
    const sealed: Sealed[] = [];
    for (let round = 0; round < 50; round++) {
      const [ra, rb] = await Promise.all([adminPost(a, '/v1/admin/keyrings/default/rotate'), adminPost(b, '/v1/admin/keyrings/default/rotate')]);
      assert.equal(ra.status, 200, JSON.stringify(ra.body));
      assert.equal(rb.status, 200, JSON.stringify(rb.body));
      sealed.push(await wrap(a), await wrap(b));
    }
    const ks = JSON.parse(await fs.readFile(path.join(dir, 'keystore.json'), 'utf8')) as { keys: Array<{ version: number }> };
    assert.deepEqual(ks.keys.map((k) => k.version), Array.from({ length: 101 }, (_, i) => i + 1), 'the first version and 100 rotations, none lost');
    brokers[0] = await restartBroker(a);
    brokers[1] = await restartBroker(b);
    for (const h of brokers) await assertAllUnwrap(h, sealed);
  });
});

describe('local keystore damaged under a running broker', { timeout: 240_000 }, () => {
  const cases: Array<[string, (file: string) => Promise<void>, RegExp]> = [
    ['deleted', (f) => fs.rm(f), /the file was deleted/],
    ['truncated', (f) => fs.truncate(f, 0), /it is empty \(truncated\)/],
    ['chmod 000', (f) => fs.chmod(f, 0o000), /mode is 0000/],
  ];
  for (const [what, damage, reason] of cases) {
    it(`${what}: unhealthy within a refresh (log, admin status, metrics), wraps refused, restart refused with restore steps, nothing lost`, async () => {
      const dir = await tempDir();
      const file = path.join(dir, 'keystore.json');
      const ports = await allocateBrokerPorts();
      let broker = await startBroker(dir, devBrokerConfig(ports, FAST_REFRESH), ports, 'admin-secret-dmg');
      try {
        await adminPost(broker, '/v1/admin/keyrings/default/rotate');
        const sealed = [await wrap(broker), await wrap(broker), await wrap(broker)];
        await damage(file);

        // The refresh runs every second; the deadline is generous for a loaded machine.
        await waitFor('/readyz 503', async () => (await fetch(`http://127.0.0.1:${ports.http}/readyz`)).status === 503, 20_000);
        const readyz = await (await fetch(`http://127.0.0.1:${ports.http}/readyz`)).json();
        assert.deepEqual(readyz, { status: 'not-ready', leader: true }, '/readyz (no auth) tells the status and the leader flag only');
        const st = await adminStatus(broker);
        const def = st.keyrings.find((k) => k.keyring === 'default');
        assert.equal(def?.healthy, false);
        assert.match(def?.reason ?? '', reason);
        assert.match(def?.reason ?? '', /keystore\.json\.recovered/);
        const metrics = await (await fetch(`http://127.0.0.1:${ports.http}/metrics`)).text();
        assert.ok(/^kekbroker_provider_up\{[^}]*keyring="default",provider="local"[^}]*\} 0$/m.test(metrics), 'provider_up 0');
        assert.ok(/^kekbroker_keyring_healthy\{[^}]*keyring="default"[^}]*\} 0$/m.test(metrics), 'keyring_healthy 0');
        const errorLine = await broker.proc.waitForLogLine('an error naming the keyring', (l) => l.includes('"level":"error"') && l.includes('keyring default is unhealthy'));
        assert.match(errorLine, reason);

        // No new wrap under a key that is not safely on disk; the caller learns the code, not the path.
        const api = brokerClient(ports.grpc);
        const e = await grpcError(unary(api, 'Wrap', { keyring: 'default', plaintext: Buffer.alloc(32, 7) }, tenantMd('dev')));
        api.close();
        assert.equal(e.code, Status.UNAVAILABLE, e.details);
        assert.match(e.details, /(provider local is unavailable|the keyring cannot serve right now) \(correlation id [0-9a-f]{16}\)/);
        assert.ok(!e.details.includes(dir), 'no file path in a caller-facing message');
        await assertAllUnwrap(broker, sealed); // served from the keys in memory

        await broker.proc.kill();
        const refused = await startRefused(dir, broker.configFile);
        assert.match(refused, /refusing to (start|create a new one)/);
        assert.match(refused, /restore it from your backup/);

        // The documented restore: the copy the broker saved, mode 0600.
        execFileSync('install', ['-m', '600', `${file}.recovered`, file]);
        broker = await startBroker(dir, devBrokerConfig(ports, FAST_REFRESH), ports, 'admin-secret-dmg');
        await assertAllUnwrap(broker, sealed);
      } finally {
        await broker.proc.kill();
      }
    });
  }
});

describe('local keystore on a full disk', { timeout: 120_000 }, () => {
  let mnt: string | undefined;
  after(() => {
    if (mnt) execFileSync('umount', [mnt]);
  });

  /** Fill the filesystem to the last byte; returns the filler file. */
  async function fill(dir: string): Promise<string> {
    const filler = path.join(dir, 'filler');
    const fh = await fs.open(filler, 'a');
    try {
      for (;;) await fh.write(Buffer.alloc(1024));
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      await fh.close().catch(() => undefined);
    }
    return filler;
  }

  /** Give back exactly one 4 KiB page: room for the lock file, none for a keystore temp file besides. */
  async function freeOnePage(filler: string): Promise<void> {
    const { size } = await fs.stat(filler);
    await fs.truncate(filler, (Math.ceil(size / 4096) - 1) * 4096);
  }

  it('first start and rotation on a full tmpfs leave no temp file and no partial keystore', async (t) => {
    const dir = await tempDir();
    const data = path.join(dir, 'data');
    await fs.mkdir(data);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', data], { stdio: 'pipe' });
      mnt = data;
    } catch (e) {
      const why = `cannot mount a tmpfs here (${String((e as { stderr?: Buffer }).stderr ?? e).trim()}); the full-disk test needs root or CAP_SYS_ADMIN`;
      console.log(`SKIPPED: ${why}`);
      return t.skip(why);
    }
    const ports = await allocateBrokerPorts();
    const config = devBrokerConfig(ports).replace('keystore: ./keystore.json', 'keystore: ./data/keystore.json');
    const configFile = path.join(dir, 'broker.yaml');
    await fs.writeFile(configFile, config);
    await fs.writeFile(path.join(dir, 'admin.token'), 'admin-secret-full', { mode: 0o600 });

    // First start on a full disk: refused, naming the cause; nothing half-written stays behind.
    let filler = await fill(data);
    for (const room of ['none', 'one page']) {
      if (room === 'one page') await freeOnePage(filler); // the lock fits, the keystore's temp file does not
      const refused = await startRefused(dir, configFile);
      assert.match(refused, /ENOSPC/, room);
      assert.deepEqual(await fs.readdir(data), ['filler'], `${room}: no keystore, no temp file, no lock`);
    }

    await fs.rm(filler);
    const broker = await startBroker(dir, config, ports, 'admin-secret-full');
    try {
      const sealed = [await wrap(broker)];
      const before = await fs.readFile(path.join(data, 'keystore.json'), 'utf8');

      // Rotation on a full disk fails with the reason and changes nothing on disk.
      filler = await fill(data);
      for (const room of ['none', 'one page']) {
        if (room === 'one page') await freeOnePage(filler);
        const r = await adminPost(broker, '/v1/admin/keyrings/default/rotate');
        assert.equal(r.status, 503, `${room}: ${JSON.stringify(r.body)}`);
        assert.match(JSON.stringify(r.body), /ENOSPC/);
        assert.deepEqual((await fs.readdir(data)).filter((n) => n.endsWith('.tmp') || n.endsWith('.lock')), [], `${room}: no temp or lock file left`);
        assert.equal(await fs.readFile(path.join(data, 'keystore.json'), 'utf8'), before, `${room}: the keystore is unchanged`);
        sealed.push(await wrap(broker));
      }

      // Space back: rotation works, and everything decrypts after a restart.
      await fs.rm(filler);
      const ok = await adminPost(broker, '/v1/admin/keyrings/default/rotate');
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      sealed.push(await wrap(broker));
      const again = await restartBroker(broker);
      try {
        await assertAllUnwrap(again, sealed);
      } finally {
        await again.proc.kill();
      }
    } finally {
      await broker.proc.kill();
    }
  });

  it('no log line holds a seed', async () => {
    assert.ok((await assertNoSeedsInLogs(LOG_FILES)) > 0);
  });
});

/**
 * HA chaos, real processes: 3 broker replicas sharing a real redis-server, one shim over all three, and an
 * apiserver-like load (Encrypt + Decrypt, 3 s deadlines, every answer compared with its seed).
 *  - SIGSTOP the leader: the shim leaves it on the first missed deadline; no failed call.
 *  - Redis SIGKILL, FLUSHALL and SIGSTOP under load: no failed call; the fleet recovers by itself.
 *  - Afterwards: no seed and no sealing key in Redis, no seed in any log.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dumpRedis } from '@kekbroker/testkit';
import { Load, fleetOnRedis } from '../helpers/fleet';
import { LOG_FILES, waitFor } from '../helpers/processes';
import { SEEDS, assertNoSeedsInLogs } from '../helpers/seeds';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('HA broker: hung leader and Redis faults (3 replicas, real Redis, one shim)', { timeout: 600_000 }, () => {
  const rig = fleetOnRedis();

  it('SIGSTOP of the leader for 20 s under load: 0 failed calls; Status stays OK', async () => {
    const leader = await rig.fleet.leaderIndex();
    assert.ok(leader >= 0);
    const load = new Load(rig.kms);
    await sleep(500);
    rig.fleet.handles[leader]?.proc.child.kill('SIGSTOP');
    let statusFailures = 0;
    let r;
    try {
      for (let i = 0; i < 20; i++) {
        await sleep(1000);
        if ((await rig.kms.status().catch(() => undefined))?.healthz !== 'ok') statusFailures++;
      }
      assert.ok((await rig.fleet.leaderIndex(leader)) >= 0, 'another replica took the lease');
    } finally {
      rig.fleet.handles[leader]?.proc.child.kill('SIGCONT');
      r = await load.stop();
    }
    console.log(`leader SIGSTOP 20 s: calls ok ${r.ok}, failed ${r.failed}, wrong ${r.wrong}; slowest ${Math.round(r.maxMs)} ms`);
    assert.equal(r.wrong, 0);
    assert.equal(r.failed, 0, r.errors.join('\n'));
    assert.equal(statusFailures, 0, 'kube-apiserver readiness (Status) never flapped');
  });

  it('Redis SIGKILL (then restart, empty), FLUSHALL and SIGSTOP 10 s under load: 0 failed calls; the fleet recovers', async () => {
    const load = new Load(rig.kms);
    try {
      await redisFaults();
    } finally {
      rig.redis.signal('SIGCONT');
      await load.stop();
    }
    const r = load.result;
    console.log(`redis faults: calls ok ${r.ok}, failed ${r.failed}, wrong ${r.wrong}; slowest ${Math.round(r.maxMs)} ms`);
    assert.equal(r.wrong, 0);
    assert.equal(r.failed, 0, r.errors.join('\n'));
  });

  async function redisFaults(): Promise<void> {
    await sleep(1000);
    rig.redis.signal('SIGKILL');
    await sleep(3000);
    await rig.redis.restart();
    await sleep(3000);
    rig.redis.cli('flushall');
    await sleep(3000);
    rig.redis.signal('SIGSTOP');
    await sleep(10_000);
    rig.redis.signal('SIGCONT');
    await waitFor('a leader again, and every replica using the shared cache again', async () => {
      if ((await rig.fleet.leaderIndex()) < 0) return false;
      for (let i = 0; i < 3; i++) if (!(await rig.fleet.adminStatus(i)).fleet?.sealingKeys.every((s) => s.open)) return false;
      return true;
    }, 30_000, 200);
  }

  it('admin: step-down hands the lease to another replica; invalidate reaches the fleet; bad input is a 400', async () => {
    const leader = await rig.fleet.leaderIndex();
    const h = rig.fleet.handles[leader];
    assert.ok(h);
    const post = (p: string, body?: object) => fetch(`http://127.0.0.1:${h.ports.admin}${p}`, {
      method: 'POST', headers: { authorization: `Bearer ${h.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined,
    });
    const r = await post('/v1/admin/cache/invalidate', { keyring: 'default', tenant: 'dev' });
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { publishedToFleet: boolean }).publishedToFleet, true);
    assert.equal((await post('/v1/admin/cache/invalidate', { keyring: 'default', revoke: true })).status, 400);
    assert.equal((await post('/v1/admin/cache/invalidate', { keyring: 'nope' })).status, 404);
    assert.equal((await post('/v1/admin/cache/sealing-key/rotate')).status, 200);
    const down = await post('/v1/admin/leader/step-down');
    assert.equal(down.status, 200);
    await waitFor('another leader', async () => (await rig.fleet.leaderIndex(leader)) >= 0, 15_000);
    assert.equal((await post('/v1/admin/leader/step-down')).status, 409, 'a passive cannot step down');
    assert.equal((await rig.kms.status()).healthz, 'ok');
  });

  it('no key material in Redis (every key and value) and none in any log', async () => {
    const dump = await dumpRedis(rig.redis);
    assert.ok(dump.length > 1000, 'Redis holds the sealed entries and sealing-key envelopes');
    assert.ok(SEEDS.length > 100);
    for (const s of SEEDS) {
      assert.equal(dump.indexOf(s), -1, 'a raw seed in Redis');
      assert.equal(dump.indexOf(Buffer.from(s.toString('base64'))), -1, 'a base64 seed in Redis');
      assert.equal(dump.indexOf(Buffer.from(s.toString('hex'))), -1, 'a hex seed in Redis');
    }
    await assertNoSeedsInLogs(LOG_FILES);
  });
});

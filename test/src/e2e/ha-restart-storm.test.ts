/**
 * Restart storm, counted at the KMS: 3 broker replicas (real processes) on the AWS KMS emulator and a real
 * redis-server. 50 apiserver-like clients of one tenant (separate channels spread over the replicas) decrypt the
 * same 20 seeds at once, every answer checked; the emulator counts its Decrypt calls.
 *  - cold L1 and cold L2: exactly 20 KMS Decrypts for the whole fleet (fleet-wide single-flight);
 *  - replicas restarted again, L2 warm in Redis: 0 KMS Decrypts;
 *  - Redis down, replicas restarted: at most 20 per replica (each replica still coalesces its own misses).
 * (Each replica also unwraps the cache-sealing key once when it starts: counted before each storm begins.)
 * The emulators run in their own process so that the 1,000 calls this test process makes do not starve the
 * KMS. The same on a Redis Cluster: ha-cluster.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startRedis, type RedisServer } from '@kekbroker/testkit';
import { StormRig } from '../helpers/restart-storm';

const CLIENTS = 50;
const SEEDS = 20;

describe('restart storm: one KMS call per distinct seed across the fleet', { timeout: 300_000 }, () => {
  let redis: RedisServer;
  let rig: StormRig;

  before(async () => {
    redis = await startRedis();
    rig = await StormRig.start({ redis: [redis.address] }, SEEDS);
  });

  after(async () => {
    await rig?.stop();
    await redis?.stop();
  });

  it('cold L1 and cold L2 on 3 restarted replicas: exactly 20 KMS Decrypts for 50 clients x 20 seeds', async () => {
    await rig.restartAll();
    // The Wraps above filled L2; drop those entries (keep the sealing keys) so L2 is cold too.
    for (const k of redis.cli('--scan', '--pattern', 'kekbroker:{*}:l2').split('\n').filter(Boolean)) redis.cli('del', k);
    await rig.sealingKeysOpen();
    const r = await rig.storm(CLIENTS);
    console.log(`restart storm, cold L2: ${r.kmsCalls} KMS Decrypts, ${Math.round(r.ms)} ms for ${CLIENTS}x${SEEDS} unwraps`);
    const statuses = await Promise.all([0, 1, 2].map(async (i) => JSON.stringify((await rig.fleet.adminStatus(i)).fleet)));
    assert.equal(r.kmsCalls, SEEDS, statuses.join('\n'));
  });

  it('restarted again with L2 warm in Redis: 0 KMS Decrypts', async () => {
    await rig.restartAll();
    await rig.sealingKeysOpen();
    const r = await rig.storm(CLIENTS);
    console.log(`restart storm, warm L2: ${r.kmsCalls} KMS Decrypts, ${Math.round(r.ms)} ms`);
    assert.equal(r.kmsCalls, 0);
  });

  it('Redis down: at most 20 KMS Decrypts per replica, every answer still right', async () => {
    await redis.stop();
    await rig.restartAll();
    const r = await rig.storm(CLIENTS);
    console.log(`restart storm, Redis down: ${r.kmsCalls} KMS Decrypts, ${Math.round(r.ms)} ms`);
    assert.ok(r.kmsCalls >= SEEDS && r.kmsCalls <= 3 * SEEDS, `${r.kmsCalls} KMS calls`);
  });
});

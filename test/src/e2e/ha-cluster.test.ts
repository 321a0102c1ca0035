/**
 * The fleet on a Redis Cluster, real processes: a 3-master cluster started by the test (redis-server
 * --cluster-enabled, redis-cli --cluster create), 3 broker replicas in `redis: { mode: cluster }` on the AWS
 * KMS emulator (Decrypts counted at the emulator).
 *  - leader lease and cache-sealing key: one leader, every replica opens the sealing key (the fenced write is
 *    one Lua script on the `{ha}` slot);
 *  - fleet-wide single-flight locks and sealed L2 entries spread over the masters: 30 clients x 20 seeds on
 *    cold replicas and a cold L2 make exactly 20 KMS Decrypts; restarted again, 0 (served from L2).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startRedisCluster } from '@kekbroker/testkit';
import { StormRig } from '../helpers/restart-storm';

const CLIENTS = 30;
const SEEDS = 20;

describe('fleet on a 3-master Redis Cluster: lease, sealed L2, fleet-wide single-flight', { timeout: 300_000 }, () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
  let rig: StormRig;
  const keys = (pattern: string): number[] => cluster.nodes.map((n) => n.cli('--scan', '--pattern', pattern).split('\n').filter(Boolean).length);

  before(async () => {
    cluster = await startRedisCluster(3);
    rig = await StormRig.start({ redis: cluster.addresses, redisMode: 'cluster' }, SEEDS);
  });

  after(async () => {
    await rig?.stop();
    await cluster?.stop();
  });

  it('one leader holds the lease; every replica opens the cache-sealing key', async () => {
    await rig.sealingKeysOpen();
    const roles = await Promise.all([0, 1, 2].map((i) => rig.fleet.readyz(i)));
    assert.equal(roles.filter((r) => r?.leader).length, 1, JSON.stringify(roles));
    assert.equal(keys('kekbroker:{ha}:leader').reduce((a, b) => a + b), 1, 'one lease, on the {ha} slot');
  });

  it(`cold replicas, cold L2: exactly ${SEEDS} KMS Decrypts for ${CLIENTS} clients x ${SEEDS} seeds; entries on several masters; warm L2: 0`, async () => {
    await rig.restartAll();
    for (const n of cluster.nodes) for (const k of n.cli('--scan', '--pattern', 'kekbroker:{*}:l2').split('\n').filter(Boolean)) n.cli('del', k);
    await rig.sealingKeysOpen();
    const cold = await rig.storm(CLIENTS);
    const perNode = keys('kekbroker:{*}:l2');
    console.log(`cluster restart storm, cold L2: ${cold.kmsCalls} KMS Decrypts, ${Math.round(cold.ms)} ms; L2 entries per master ${perNode.join('/')}`);
    assert.equal(cold.kmsCalls, SEEDS);
    assert.ok(perNode.filter((n) => n > 0).length >= 2, `the entries are spread over the masters (${perNode.join('/')})`);

    await rig.restartAll();
    await rig.sealingKeysOpen();
    const warm = await rig.storm(CLIENTS);
    console.log(`cluster restart storm, warm L2: ${warm.kmsCalls} KMS Decrypts, ${Math.round(warm.ms)} ms`);
    assert.equal(warm.kmsCalls, 0);
  });
});

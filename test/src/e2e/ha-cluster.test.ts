/**
 * The fleet on a Redis Cluster, real processes: a 3-master cluster started by the test (redis-server
 * --cluster-enabled, redis-cli --cluster create), 3 broker replicas in `redis: { mode: cluster }` on the AWS
 * KMS emulator (Decrypts counted at the emulator).
 *  - leader lease and cache-sealing key: one leader, every replica opens the sealing key (the fenced write is
 *    one Lua script on the `{ha}` slot);
 *  - fleet-wide single-flight locks and sealed L2 entries spread over the masters: 30 clients x 20 seeds on
 *    cold replicas and a cold L2 make exactly 20 KMS Decrypts; restarted again, 0 (served from L2);
 *  - invalidation pub/sub across the cluster: a tenant flush sent to one replica empties every replica's L1.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startRedisCluster } from '@kekbroker/testkit';
import { waitFor } from '../helpers/processes';
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

  it('a tenant flush sent to one replica reaches every replica through the cluster (pub/sub)', async () => {
    const entries = async (i: number): Promise<number> => {
      const m = await (await fetch(`http://127.0.0.1:${rig.fleet.handles[i]?.ports.http}/metrics`)).text();
      return Number(/^kekbroker_cache_entries{[^}]*} (\d+)/m.exec(m)?.[1] ?? NaN);
    };
    for (let i = 0; i < 3; i++) assert.ok((await entries(i)) >= SEEDS, `replica ${i + 1} holds the seeds in L1 after the storm`);
    const h = rig.fleet.handles[0];
    const r = await fetch(`http://127.0.0.1:${h?.ports.admin}/v1/admin/cache/invalidate`, {
      method: 'POST', headers: { authorization: `Bearer ${h?.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ keyring: 'default', tenant: 'dev' }),
    });
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { publishedToFleet: boolean }).publishedToFleet, true);
    await waitFor('every replica dropped the tenant\'s L1 entries', async () => (await Promise.all([1, 2].map(entries))).every((n) => n === 0), 10_000, 100);
  });
});

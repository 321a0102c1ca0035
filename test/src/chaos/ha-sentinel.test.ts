/**
 * HA chaos on Redis Sentinel, real processes: a redis-server master, one replica and 3 redis-sentinel processes
 * (quorum 2), 3 broker replicas in `redis: { mode: sentinel }`, one shim over them and an apiserver-like load
 * (Encrypt + Decrypt, 3 s deadlines, every answer compared with its seed).
 *  - SIGKILL the Redis master under load: the sentinels promote the replica; 0 failed calls, 0 wrong answers;
 *    the fleet finds the new master by itself (lease, sealing keys) and the shared L2 works on it again.
 * Redis SIGSTOP / SIGKILL / FLUSHALL on a standalone Redis: ha-faults.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { UnwrapResponse, WrapResponse } from '@kekbroker/proto';
import { dumpRedis, startRedisSentinel, type RedisSentinelSet, type RedisServer } from '@kekbroker/testkit';
import { brokerClient, tenantMd, unary } from '../helpers/broker-client';
import { Load, startFleetWithShim, type FleetWithShim } from '../helpers/fleet';
import { waitFor } from '../helpers/processes';
import { SEEDS, recordSeed } from '../helpers/seeds';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('HA broker on Redis Sentinel: master SIGKILL under load', { timeout: 300_000 }, () => {
  let sentinel: RedisSentinelSet;
  let ha: FleetWithShim;

  before(async () => {
    sentinel = await startRedisSentinel();
    ha = await startFleetWithShim({ redis: sentinel.sentinelAddresses, redisMode: 'sentinel', sentinelName: sentinel.name });
    await fleetOnRedis();
  });

  after(async () => {
    await ha?.stop();
    await sentinel?.stop();
  });

  /** Every replica sees Redis and has the sealing key open (it uses the shared L2), and one holds the lease. */
  async function fleetOnRedis(): Promise<void> {
    await waitFor('a leader, and every replica on the shared L2', async () => {
      if ((await ha.fleet.leaderIndex()) < 0) return false;
      for (let i = 0; i < 3; i++) {
        if (!/^kekbroker_redis_up{[^}]*} 1$/m.test(await metrics(i))) return false;
        if (!(await ha.fleet.adminStatus(i)).fleet?.sealingKeys.every((s) => s.open)) return false;
      }
      return true;
    }, 30_000, 200);
  }

  async function metrics(i: number): Promise<string> {
    const h = ha.fleet.handles[i];
    return (await fetch(`http://127.0.0.1:${h?.ports.http}/metrics`)).text();
  }

  const l2Hits = async (i: number): Promise<number> => Number(/^kekbroker_cache_l2_hits{[^}]*} (\d+)/m.exec(await metrics(i))?.[1] ?? NaN);
  const l2Keys = (s: RedisServer): number => s.cli('--scan', '--pattern', 'kekbroker:{*}:l2').split('\n').filter(Boolean).length;

  it('SIGKILL of the master under load: the replica is promoted; 0 failed calls, 0 wrong answers; L2 works on the new master', async () => {
    const load = new Load(ha.kms);
    const t0 = performance.now();
    let promotedMs = 0;
    try {
      await sleep(1000);
      sentinel.master.signal('SIGKILL');
      await waitFor('the sentinels to promote the replica', async () => sentinel.currentMaster() === sentinel.replica, 30_000, 100);
      promotedMs = performance.now() - t0 - 1000;
      await fleetOnRedis();
      await sleep(2000); // load on the new master
    } finally {
      await load.stop();
    }
    const r = load.result;
    console.log(`sentinel failover: promoted after ${Math.round(promotedMs)} ms; calls ok ${r.ok}, failed ${r.failed}, wrong ${r.wrong}; slowest ${Math.round(r.maxMs)} ms`);
    assert.equal(r.wrong, 0);
    assert.equal(r.failed, 0, r.errors.join('\n'));
    assert.ok(r.ok > 50, `the load kept running (${r.ok} calls)`);

    // L2 on the new master: a Wrap on replica 1 is sealed into Redis; replica 2 (cold for it) answers from L2.
    const newMaster = sentinel.replica;
    const before = l2Keys(newMaster);
    const seed = recordSeed(randomBytes(32));
    const c1 = brokerClient(ha.fleet.ports[0]?.grpc as number);
    const c2 = brokerClient(ha.fleet.ports[1]?.grpc as number);
    try {
      const w = await unary<object, WrapResponse>(c1, 'Wrap', { keyring: 'default', plaintext: seed }, tenantMd('dev'));
      await waitFor('the sealed entry written to the new master', async () => l2Keys(newMaster) > before, 10_000, 100);
      const hits = await l2Hits(1);
      const u = await unary<object, UnwrapResponse>(c2, 'Unwrap', { keyring: 'default', ciphertext: w.ciphertext, key_id: w.key_id }, tenantMd('dev'));
      assert.ok(Buffer.from(u.plaintext as Buffer).equals(seed), 'the unwrap is the seed');
      assert.equal(await l2Hits(1), hits + 1, 'replica 2 answered from the shared L2 on the new master');
    } finally {
      c1.close();
      c2.close();
    }
  });

  it('no key material on the new master (every key and value)', async () => {
    const dump = await dumpRedis(sentinel.replica);
    assert.ok(dump.length > 1000, 'the new master holds sealed entries and sealing-key envelopes');
    for (const s of SEEDS) {
      assert.equal(dump.indexOf(s), -1, 'a raw seed in Redis');
      assert.equal(dump.indexOf(Buffer.from(s.toString('base64'))), -1, 'a base64 seed in Redis');
    }
  });
});

/**
 * The fleet layer against real redis-server processes (standalone and a 3-master cluster) started here.
 * "Replicas" are Fleet instances with their own connections; the keyring that wraps the sealing key is a
 * small in-test fake (a boundary mock: the cross-process tests in test/ use real brokers and KMS emulators).
 */
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DefaultKeyCache, L1Cache, type KeyCacheEntryMeta } from '@kekbroker/cache';
import { dumpRedis, startRedis, startRedisCluster, type RedisServer } from '@kekbroker/testkit';
import { Fleet } from './fleet';
import type { RedisConfig } from './redis-client';
import type { SealingKeyring } from './sealing-keys';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A fake KMS-backed keyring: AES-GCM under a key only it holds; counts unwraps. */
function fakeKeyring(name = 'k'): SealingKeyring & { unwraps: number } {
  const kek = randomBytes(32);
  return {
    name, keyId: `${name}:gen`, unwraps: 0,
    async wrap(tenant, pt) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', kek, iv).setAAD(Buffer.from(tenant));
      const ct = Buffer.concat([c.update(pt), c.final()]);
      return { ciphertext: Buffer.concat([iv, ct, c.getAuthTag()]) };
    },
    async unwrap(tenant, ct) {
      this.unwraps++;
      const b = Buffer.from(ct);
      const d = createDecipheriv('aes-256-gcm', kek, b.subarray(0, 12)).setAAD(Buffer.from(tenant));
      d.setAuthTag(b.subarray(b.length - 16));
      return { plaintext: Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]) };
    },
  };
}

function redisCfg(nodes: string[], mode: RedisConfig['mode'] = 'standalone'): RedisConfig {
  return { mode, nodes, db: 0, keyPrefix: 'kb:', commandTimeoutMs: 300, connectTimeoutMs: 1000 };
}

async function replica(cfg: RedisConfig, keyring: SealingKeyring, id: string): Promise<{ fleet: Fleet; cache: DefaultKeyCache }> {
  const fleet = await Fleet.connect(cfg, { replicaId: id, leaseTtlMs: 2000, renewEveryMs: 300, sealingKeyRotationSeconds: 3600, flightLockMs: 600 }, 60_000, silent);
  const cache = new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 1000, maxBytes: 1 << 20, ttlMs: 60_000 }), maxStaleMs: 0, shared: fleet.cache });
  await fleet.start([keyring], cache);
  return { fleet, cache };
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const signal = (): AbortSignal => AbortSignal.timeout(5000);

async function threeReplicas(cfg: RedisConfig) {
  const keyring = fakeKeyring();
  const rs = await Promise.all(['r1', 'r2', 'r3'].map((id) => replica(cfg, keyring, id)));
  const stop = (): Promise<unknown> => Promise.all(rs.map((r) => r.fleet.stop()));
  try {
    await until('one leader', () => rs.filter((r) => r.fleet.lease.isLeader).length === 1);
    await until('sealing key open on every replica', async () => {
      await Promise.all(rs.map((r) => r.fleet.sealing.refreshAll()));
      return rs.every((r) => r.fleet.cache.available('k'));
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { keyring, rs, stop };
}

/** Concurrent misses for 5 envelopes on all replicas at once: returns loads per envelope, checks every answer. */
async function storm(rs: Array<{ cache: DefaultKeyCache }>, tenant = 'a'): Promise<Map<string, number>> {
  const loads = new Map<string, number>();
  const seeds = new Map<string, Buffer>();
  const calls: Array<Promise<void>> = [];
  for (let e = 0; e < 5; e++) {
    const key = randomBytes(16).toString('base64');
    const seed = randomBytes(32);
    seeds.set(key, seed);
    const meta: KeyCacheEntryMeta = { tenant, keyring: 'k', generation: '0a0b' };
    for (const r of rs) {
      for (let i = 0; i < 10; i++) {
        calls.push(r.cache.getOrLoad(key, meta, signal(), async () => {
          loads.set(key, (loads.get(key) ?? 0) + 1);
          await new Promise((res) => setTimeout(res, 100)); // a KMS round trip
          return Buffer.from(seed);
        }).then((got) => assert.deepEqual(got.plaintext, seed, 'every answer is the seed')));
      }
    }
  }
  await Promise.all(calls);
  for (const k of seeds.keys()) if (!loads.has(k)) loads.set(k, 0);
  return loads;
}

describe('fleet on a standalone redis-server', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => redis.stop());

  beforeEach(() => redis.cli('flushall'));

  it('one leader creates the sealing key; each replica opens it once; concurrent misses on all replicas make ONE load per envelope', async () => {
    const { keyring, rs, stop } = await threeReplicas(redisCfg([redis.address]));
    try {
      // The passives unwrap it once each; the leader made it (it may also unwrap it once if its periodic sync
      // read the new hash before the rotation recorded the key locally).
      assert.ok(keyring.unwraps >= 2 && keyring.unwraps <= 3, `sealing-key unwraps: ${keyring.unwraps}, at most one per replica`);
      const loads = await storm(rs);
      assert.deepEqual([...loads.values()], [1, 1, 1, 1, 1]);
      const waits = rs.reduce((n, r) => n + r.fleet.cache.counters.flightWaits, 0);
      assert.ok(waits > 0, 'other replicas waited on the fleet lock rather than calling the KMS');
    } finally {
      await stop();
    }
  });

  it('Redis holds no key material: every key and value dumped contains neither a seed nor a sealing key', async () => {
    const { rs, stop } = await threeReplicas(redisCfg([redis.address]));
    try {
      const seeds: Buffer[] = [];
      for (let i = 0; i < 20; i++) {
        const seed = randomBytes(32);
        seeds.push(seed);
        rs[i % 3]?.cache.put(`key${i}`, { tenant: 'a', keyring: 'k', generation: '0a0b' }, seed);
      }
      await until('entries written', () => rs.reduce((n, r) => n + r.fleet.cache.counters.l2Writes, 0) === 20);
      const sealingKey = rs[0]?.fleet.sealing.current('k')?.key as Buffer;
      const dump = await dumpRedis(redis);
      assert.ok(dump.length > 20 * 32, 'the dump holds the sealed entries');
      for (const s of [...seeds, sealingKey]) {
        for (const form of [s, Buffer.from(s.toString('base64')), Buffer.from(s.toString('hex'))]) assert.equal(dump.indexOf(form), -1, 'key material found in Redis');
      }
      const keys = redis.cli('--scan').split('\n').filter(Boolean);
      assert.ok(keys.length > 20 && keys.every((k) => k.startsWith('kb:')), 'every key is under the configured prefix');
    } finally {
      await stop();
    }
  });

  it('an L2 entry written for tenant A is never returned to tenant B, even under the same cache key', async () => {
    const { rs, stop } = await threeReplicas(redisCfg([redis.address]));
    try {
      const [r1, r2] = rs as [(typeof rs)[0], (typeof rs)[0]];
      const key = 'forged-same-cache-key';
      r1.cache.put(key, { tenant: 'a', keyring: 'k', generation: '0a0b' }, Buffer.from('tenant-a-secret'));
      await until('written', () => r1.fleet.cache.counters.l2Writes === 1);
      const got = await r2.cache.getOrLoad(key, { tenant: 'b', keyring: 'k', generation: '0a0b' }, signal(), async () => Buffer.from('tenant-b-own'));
      assert.deepEqual(got.plaintext, Buffer.from('tenant-b-own'));
      assert.ok(r2.fleet.cache.counters.l2Rejected >= 1, `the foreign entry failed authentication: ${JSON.stringify(r2.fleet.cache.counters)} ${r2.fleet.health.lastError}`);
      // B's load replaced the entry under that cache key with one sealed for B. A, on a replica with a cold L1,
      // must not get B's value either: the entry fails authentication for A and A loads its own.
      const asA = await rs[2]?.cache.getOrLoad(key, { tenant: 'a', keyring: 'k', generation: '0a0b' }, signal(), async () => Buffer.from('tenant-a-secret'));
      assert.deepEqual(asA?.plaintext, Buffer.from('tenant-a-secret'));
      assert.ok((rs[2]?.fleet.cache.counters.l2Rejected ?? 0) >= 1);
    } finally {
      await stop();
    }
  });

  it('a lock holder that dies is taken over after flightLockMs; the waiter loads once', async () => {
    const { rs, stop } = await threeReplicas(redisCfg([redis.address]));
    try {
      const r = rs[0] as (typeof rs)[0];
      const key = 'orphaned';
      // A replica took the lock and was SIGKILLed before writing the entry: the lock just sits there.
      redis.cli('set', `kb:{${key}}:lock`, 'dead-holder', 'px', '600');
      let loads = 0;
      const got = await r.cache.getOrLoad(key, { tenant: 'a', keyring: 'k', generation: '0a0b' }, signal(), async () => {
        loads++;
        return Buffer.from('v');
      });
      assert.deepEqual(got.plaintext, Buffer.from('v'));
      assert.equal(loads, 1);
      assert.equal(r.fleet.cache.counters.flightTakeovers, 1);
    } finally {
      await stop();
    }
  });

  it('a reachable Redis answers the first command right after connect (the version refs a keyring reads at start)', async () => {
    redis.cli('hset', 'kb:{ha}:version-refs:k', 'aws', 'v7');
    const fleet = await Fleet.connect(redisCfg([redis.address]), { replicaId: 'r0', leaseTtlMs: 2000, renewEveryMs: 300, sealingKeyRotationSeconds: 3600, flightLockMs: 600 }, 60_000, silent);
    try {
      assert.deepEqual(await fleet.versionRefs.load('k'), { aws: 'v7' });
    } finally {
      await fleet.stop();
    }
  });

  it('leader lease: step-down hands over with a higher epoch; a stopped Redis makes the leader step down by itself', async () => {
    const { rs, stop } = await threeReplicas(redisCfg([redis.address]));
    try {
      const leader = rs.find((r) => r.fleet.lease.isLeader) as (typeof rs)[0];
      const epoch = leader.fleet.lease.epoch;
      assert.equal(await leader.fleet.lease.stepDown(), true);
      await until('a new leader', () => rs.some((r) => r !== leader && r.fleet.lease.isLeader));
      const next = rs.find((r) => r.fleet.lease.isLeader) as (typeof rs)[0];
      assert.ok(next.fleet.lease.epoch > epoch, 'the epoch (fencing token) grows');
      redis.signal('SIGSTOP');
      try {
        await until('the leader gives up before its lease could expire', () => !next.fleet.lease.isLeader, 5000);
        // Data plane without Redis: a miss loads directly, well inside a deadline.
        const t0 = Date.now();
        const got = await next.cache.getOrLoad('while-stopped', { tenant: 'a', keyring: 'k', generation: '0a0b' }, signal(), async () => Buffer.from('v'));
        assert.deepEqual(got.plaintext, Buffer.from('v'));
        assert.ok(Date.now() - t0 < 2500, 'a hung Redis does not hold a request past its deadline');
      } finally {
        redis.signal('SIGCONT');
      }
      await until('a leader again after Redis returns', () => rs.some((r) => r.fleet.lease.isLeader));
    } finally {
      await stop();
    }
  });
});

describe('fleet on a 3-master Redis Cluster', () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
  before(async () => {
    cluster = await startRedisCluster(3);
  });
  after(async () => cluster.stop());

  it('lease, sealing key, sealed L2 and fleet-wide single-flight work across slots (hash tags)', async () => {
    const { rs, stop } = await threeReplicas(redisCfg(cluster.addresses, 'cluster'));
    try {
      const loads = await storm(rs);
      assert.deepEqual([...loads.values()], [1, 1, 1, 1, 1], JSON.stringify(rs.map((r) => ({ ...r.fleet.cache.counters, err: r.fleet.health.lastError }))));
      const slots = new Set(cluster.nodes.map((n) => Number(n.cli('dbsize').trim())).filter((n) => n > 0));
      assert.ok(slots.size >= 1);
      const perNode = cluster.nodes.map((n) => Number(n.cli('dbsize').trim()));
      assert.ok(perNode.filter((n) => n > 0).length >= 2, `keys spread over several masters: ${perNode.join(',')}`);
    } finally {
      await stop();
    }
  });
});

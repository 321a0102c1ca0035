/**
 * The rotation lifecycle on a real fleet (broker replicas as processes, a real redis-server):
 *  - scheduled rotation with a 2 s period on 3 replicas: one rotation per period, run by the leader only,
 *    every generation's envelopes still decrypt on every replica;
 *  - the leader SIGKILLed in the middle of a scheduled rotation (the AWS emulator makes rotations slow): the
 *    next leader takes the interrupted rotation over and the fleet converges on one key_id, nothing lost;
 *  - the fleet-wide usage report and retire: two tenants read different generations; retiring the one a
 *    tenant still reads is refused naming it; after that tenant re-writes and the quiet period passes it
 *    succeeds, and the retired generation no longer unwraps on any replica (nor after a restart).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startRedis, tempDir, type RedisServer } from '@kekbroker/testkit';
import type { UnwrapResponse, WrapResponse } from '@kekbroker/proto';
import { brokerClient, tenantMd, unary } from '../helpers/broker-client';
import { TestFleet } from '../helpers/fleet';
import { kekctlEnv, kekctlSync } from '../helpers/kekctl';
import { REPO, startProcess, waitFor, type Proc } from '../helpers/processes';
import { recordSeed } from '../helpers/seeds';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sealed { seed: Buffer; ciphertext: Buffer; keyId: string; tenant: string }

async function wrap(port: number, tenant: string, seed = recordSeed(randomBytes(32))): Promise<Sealed> {
  const c = brokerClient(port);
  try {
    const w = await unary<object, WrapResponse>(c, 'Wrap', { keyring: 'default', plaintext: seed }, tenantMd(tenant));
    return { seed, ciphertext: w.ciphertext as Buffer, keyId: w.key_id as string, tenant };
  } finally {
    c.close();
  }
}

async function unwrap(port: number, s: Sealed): Promise<Buffer> {
  const c = brokerClient(port);
  try {
    const r = await unary<object, UnwrapResponse>(c, 'Unwrap', { keyring: 'default', ciphertext: s.ciphertext }, tenantMd(s.tenant));
    return r.plaintext as Buffer;
  } finally {
    c.close();
  }
}

async function admin<T>(fleet: TestFleet, i: number, method: string, p: string, body?: unknown): Promise<{ status: number; json: T }> {
  const h = fleet.handles[i];
  assert.ok(h, `replica ${i} is running`);
  const r = await fetch(`http://127.0.0.1:${h.ports.admin}${p}`, {
    method, headers: { authorization: `Bearer ${h.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, json: (await r.json()) as T };
}

async function metric(fleet: TestFleet, i: number, name: string, labels: string): Promise<number> {
  const h = fleet.handles[i];
  if (!h?.proc.alive) return 0;
  const text = await (await fetch(`http://127.0.0.1:${h.ports.http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)));
  return line ? Number(line.split(' ').pop()) : 0;
}

interface Lifecycle { keyId: string; lifecycle: { lastRotation?: { state: string; replica: string; startedAt: string; to?: string }; rotationInProgress?: { replica: string }; schedule?: { nextDue: string; overdue: boolean }; keyAgeSeconds?: number } }

describe('scheduled rotation across 3 replicas', { timeout: 120_000 }, () => {
  let redis: RedisServer;
  let fleet: TestFleet;

  before(async () => {
    redis = await startRedis();
    fleet = await TestFleet.start(await tempDir(), 3, { redis: [redis.address], keyringYaml: 'rotationPeriodSeconds: 2', extraYaml: 'health: { refreshSeconds: 1 }\n' });
  });
  after(async () => {
    await fleet?.stop();
    await redis?.stop();
  });

  it('one rotation per period, by the leader only; every generation still decrypts on every replica', async () => {
    await waitFor('a leader', async () => (await fleet.leaderIndex()) >= 0, 15_000, 100);
    const sealed: Sealed[] = [];
    const t0 = Date.now();
    const countRotations = async (): Promise<number[]> => Promise.all([0, 1, 2].map((i) => metric(fleet, i, 'kekbroker_rotations_total', 'by="schedule",result="ok"')));
    const before = await countRotations();
    for (let n = 0; Date.now() - t0 < 11_000; n++) {
      sealed.push(await wrap(fleet.ports[n % 3]?.grpc as number, n % 2 ? 'dev' : 'tenant-b'));
      await sleep(200);
    }
    const elapsed = (Date.now() - t0) / 1000;
    const per = (await countRotations()).map((v, i) => v - (before[i] ?? 0));
    const total = per.reduce((a, b) => a + b, 0);
    assert.equal(per.filter((v) => v > 0).length, 1, `rotations ran on one replica only: ${per.join(', ')}`);
    assert.ok(total >= Math.floor(elapsed / 2) - 1 && total <= Math.ceil(elapsed / 2) + 1, `${total} rotations in ${elapsed.toFixed(1)} s with a 2 s period`);
    const generations = new Set(sealed.map((s) => s.keyId));
    assert.ok(generations.size >= total, `every rotation gave a new key_id (${generations.size} key_ids, ${total} rotations)`);
    // Every envelope, of every generation, on every replica.
    for (const [i, s] of sealed.entries()) assert.ok((await unwrap(fleet.ports[(i + 1) % 3]?.grpc as number, s)).equals(s.seed), `envelope ${i} (${s.keyId})`);
    const leader = await fleet.leaderIndex();
    const view = await admin<Lifecycle>(fleet, leader, 'GET', '/v1/admin/keyrings/default');
    assert.equal(view.json.lifecycle.lastRotation?.state, 'done');
    const gap = Date.parse(view.json.lifecycle.schedule?.nextDue ?? '') - Date.parse(view.json.lifecycle.lastRotation?.startedAt ?? '');
    assert.equal(gap, 2000, 'the next rotation is due one period after the last one started');
    assert.equal(view.json.lifecycle.schedule?.overdue, false);
  });
});

describe('leader SIGKILLed in the middle of a scheduled rotation', { timeout: 180_000 }, () => {
  let redis: RedisServer;
  let fleet: TestFleet;
  let emulators: Proc;
  let control: number;

  before(async () => {
    const dir = await tempDir();
    const [aws, gcp, azure] = [await freePort(), await freePort(), await freePort()];
    control = await freePort();
    emulators = startProcess(path.join(REPO, 'packages/emulators/dist/cli.js'),
      ['--aws-port', String(aws), '--gcp-port', String(gcp), '--azure-port', String(azure), '--control-port', String(control), '--dir', dir], path.join(dir, 'emulators.log'));
    await waitFor('emulators', async () => (await fetch(`http://127.0.0.1:${control}/calls/aws`).catch(() => undefined))?.ok ?? false, 30_000, 100);
    Object.assign(process.env, { E2E_AWS_KEY: 'AKIDEXAMPLE', E2E_AWS_SECRET: 'not-a-secret', AWS_EC2_METADATA_DISABLED: 'true' });
    // Rotations take 2.5 s at the KMS: long enough to kill the leader while one is in flight.
    await fetch(`http://127.0.0.1:${control}/faults/aws`, { method: 'POST', body: JSON.stringify({ kind: 'latency', ms: 2500, op: 'RotateKeyOnDemand' }) });
    redis = await startRedis();
    const providerYaml = `{ type: aws-kms, region: us-east-1, keyId: alias/kekbroker-dev, endpoint: "http://127.0.0.1:${aws}", maxAttempts: 1, requestTimeoutMs: 10000, callTimeoutMs: 12000, credentials: { source: env, accessKeyIdEnv: E2E_AWS_KEY, secretAccessKeyEnv: E2E_AWS_SECRET } }`;
    fleet = await TestFleet.start(dir, 3, { redis: [redis.address], providerYaml, keyringYaml: 'rotationPeriodSeconds: 6', extraYaml: 'health: { refreshSeconds: 1 }\n' });
  });
  after(async () => {
    await fleet?.stop();
    await redis?.stop();
    await emulators?.kill();
  });

  it('the next leader re-runs the interrupted rotation; the fleet converges on one key_id and loses nothing', async () => {
    const sealed = [await wrap(fleet.ports[0]?.grpc as number, 'dev')];
    // Wait for a rotation in flight, then kill the replica running it.
    const running = await waitFor('a scheduled rotation in flight', async () => {
      const i = await fleet.leaderIndex();
      if (i < 0) return undefined;
      const v = await admin<Lifecycle>(fleet, i, 'GET', '/v1/admin/keyrings/default');
      return v.json.lifecycle.rotationInProgress ? { i, replica: v.json.lifecycle.rotationInProgress.replica } : undefined;
    }, 30_000, 100);
    const killedAt = Date.now();
    await fleet.handles[running.i]?.proc.kill('SIGKILL');
    const others = [0, 1, 2].filter((i) => i !== running.i);
    const done = await waitFor('the interrupted rotation re-run by another replica', async () => {
      const v = await admin<Lifecycle>(fleet, others[0] as number, 'GET', '/v1/admin/keyrings/default');
      const last = v.json.lifecycle.lastRotation;
      return last?.state === 'done' && last.replica !== running.replica && Date.parse(last.startedAt) > killedAt ? last : undefined;
    }, 40_000, 200);
    await waitFor('a survivor logged the takeover', async () => {
      const logs = await Promise.all(others.map(async (i) => (await fleet.handles[i]?.proc.logs()) ?? ''));
      return logs.some((l) => /taking over an interrupted rotation of keyring default/.test(l)) || undefined;
    });
    // Both survivors agree on the key_id, and it is the one the re-run produced.
    await waitFor('survivors on one key_id', async () => {
      const ids = await Promise.all(others.map(async (i) => (await admin<Lifecycle>(fleet, i, 'GET', '/v1/admin/keyrings/default')).json.keyId));
      return ids.every((id) => id === done.to) ? ids : undefined;
    }, 15_000, 200);
    sealed.push(await wrap(fleet.ports[others[0] as number]?.grpc as number, 'dev'));
    await fleet.start(running.i);
    for (const s of sealed) for (const i of [0, 1, 2]) assert.ok((await unwrap(fleet.ports[i]?.grpc as number, s)).equals(s.seed), `${s.keyId} on replica ${i}`);
  });
});

describe('usage report across replicas, and retire', { timeout: 120_000 }, () => {
  let redis: RedisServer;
  let fleet: TestFleet;
  const kekctl = (i: number, ...args: string[]) => kekctlSync(kekctlEnv(fleet.handles[i]?.ports.admin, path.join(fleet.dir, 'admin.token')), args);

  before(async () => {
    redis = await startRedis();
    fleet = await TestFleet.start(await tempDir(), 2, { redis: [redis.address], keyringYaml: 'retireQuietSeconds: 3' });
  });
  after(async () => {
    await fleet?.stop();
    await redis?.stop();
  });

  it('two tenants on different generations; retire refused naming the reader, then allowed after its re-write; retired means retired', async () => {
    const [p0, p1] = [fleet.ports[0]?.grpc as number, fleet.ports[1]?.grpc as number];
    const old = await wrap(p0, 'dev');
    const rot = await admin<{ keyId: string }>(fleet, 1, 'POST', '/v1/admin/keyrings/default/rotate');
    assert.equal(rot.status, 200);
    await waitFor('replica 0 on the new key_id', async () => (await admin<Lifecycle>(fleet, 0, 'GET', '/v1/admin/keyrings/default')).json.keyId === rot.json.keyId, 10_000, 100);
    const fresh = await wrap(p1, 'tenant-b');
    assert.equal(fresh.keyId, rot.json.keyId);
    assert.ok((await unwrap(p1, old)).equals(old.seed)); // dev reads the old generation on replica 1
    assert.ok((await unwrap(p0, fresh)).equals(fresh.seed)); // tenant-b reads the new one on replica 0

    type Usage = { scope: string; generations: Array<{ keyId: string; tenants: Array<{ tenant: string; unwrap?: { count: number } }> }> };
    const readers = (u: Usage, id: string) => u.generations.find((g) => g.keyId === id)?.tenants.filter((t) => t.unwrap).map((t) => t.tenant);
    // Replicas add their counts to Redis every 2 s: replica 0 reports the unwrap replica 1 served.
    const usage = await waitFor('the fleet-wide report', async () => {
      const u = JSON.parse(kekctl(0, 'usage', 'default', '-o', 'json').out) as Usage;
      return readers(u, old.keyId)?.length ? u : undefined;
    }, 10_000, 250);
    assert.equal(usage.scope, 'fleet');
    const gen = (id: string) => readers(usage, id);
    assert.deepEqual(gen(old.keyId), ['dev']);
    assert.deepEqual(gen(fresh.keyId), ['tenant-b']);

    const refused = kekctl(0, 'retire', 'default', old.keyId);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /still read .* by: dev \(last unwrap/);
    assert.doesNotMatch(refused.err, /tenant-b/);
    assert.match(kekctl(0, 'retire', 'default', fresh.keyId).err, /current generation/);
    assert.match(kekctl(0, 'retire', 'default', old.keyId, '--force').err, /needs a reason/);

    // dev re-writes its Secret (read under the old generation, write under the current), then stays quiet.
    const rewritten = await wrap(p0, 'dev', Buffer.from(await unwrap(p0, old)));
    assert.equal(rewritten.keyId, fresh.keyId);
    await sleep(3_500);
    const ok = kekctl(0, 'retire', 'default', old.keyId, '-o', 'json');
    assert.equal(ok.code, 0, ok.err);
    assert.equal((JSON.parse(ok.out) as { alreadyRetired: boolean }).alreadyRetired, false);

    // Refused on both replicas (replica 1 had it in its L1 cache), the current generation unaffected.
    for (const p of [p0, p1]) {
      await waitFor(`retired on ${p}`, async () => unwrap(p, old).then(() => false, (e: Error) => /retired/.test(e.message)), 5_000, 100);
      await assert.rejects(unwrap(p, old), (e: Error & { code?: number }) => e.code === 5 && /was retired at .* by admin/.test(e.message));
      assert.ok((await unwrap(p, rewritten)).equals(old.seed));
    }
    const view = kekctl(1, 'keyring', 'default');
    assert.match(view.out, /retired: 1/);
    assert.match(view.out, new RegExp(old.keyId.replace(/\//g, '\\/')));
    // The fleet status lists both replicas; a flush reaches every replica.
    const st = JSON.parse(kekctl(0, 'status', '-o', 'json').out) as { fleet: { replicas: Array<{ replica: string; alive: boolean }> } };
    assert.deepEqual(st.fleet.replicas.map((r) => [r.replica, r.alive]), [['b1', true], ['b2', true]]);
    const flushed = JSON.parse(kekctl(0, 'flush', 'default', '--tenant', 'dev', '-o', 'json').out) as { publishedToFleet: boolean };
    assert.equal(flushed.publishedToFleet, true);
    // A restarted replica reads the retirement back from the fleet.
    await fleet.handles[1]?.proc.kill('SIGKILL');
    await fleet.start(1);
    await assert.rejects(unwrap(p1, old), /retired/);
  });
});

/**
 * Transit data keys shared by a fleet, real processes: 2 broker replicas, a real redis-server, a keyring on
 * the GCP KMS emulator (the KMS calls are counted there). Proves that
 *  - the replicas encrypt under the same data keys, with the message limit counted fleet-wide (maxMessages 64:
 *    150 encrypts over both replicas make exactly 3 data keys, i.e. 3 KMS wraps, none used more than 64 times);
 *  - either replica decrypts what the other sealed with 0 KMS unwraps;
 *  - no data key is in Redis in the clear (every key and value dumped, each data key recovered from the KMS);
 *  - an admin invalidation drops the shared keys (Redis and both replicas): the next encrypt makes one new key;
 *  - with Redis gone a replica keeps answering with a local data key and says so in its metrics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeEnvelope, openPayload, payloadAad, type WrapContext } from '@kekbroker/core';
import { startGcpKmsEmulator, type GcpKmsEmulator } from '@kekbroker/emulators';
import { fromConfig } from '@kekbroker/provider-gcp-kms';
import { dumpRedis, freePort, startRedis, tempDir, type RedisServer } from '@kekbroker/testkit';
import { parseCiphertext } from '@kekbroker/transit';
import { allocateBrokerPorts, startBroker, waitFor, type BrokerHandle, type BrokerPorts } from '../helpers/processes';
import { sha } from '../helpers/transit';

const TOKEN = 'hvs.fleet-transit-token';
const ENCRYPTS = 150; // shared: 3 keys (64, 64, 22); per replica it would be 2 + 2
const MAX_MESSAGES = 64;

function config(p: BrokerPorts, transitPort: number, replica: string, redis: string, gcpYaml: string): string {
  return `grpc: { listen: "127.0.0.1:${p.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${p.http}" }
admin: { listen: "127.0.0.1:${p.admin}", tokenFile: ./admin.token }
providers:
  gcp: ${gcpYaml}
keyrings:
  default: { providers: [gcp] }
tenants:
  dev: { keyrings: [default] }
redis: { mode: standalone, nodes: ["${redis}"], commandTimeoutMs: 1000 }
ha: { replicaId: ${replica}, leaseTtlMs: 3000, renewEveryMs: 1000 }
log: { level: info, audit: false }
transit:
  enabled: true
  listen: "127.0.0.1:${transitPort}"
  dataKeys: { maxMessages: ${MAX_MESSAGES} }
  keys:
    app: { keyring: default }
  identities:
    - { tokenSha256: "${sha(TOKEN)}", tenant: dev, operations: [encrypt, decrypt] }
`;
}

interface Replica { h: BrokerHandle; url: string }

async function post(r: Replica, path: string, body: unknown): Promise<{ status: number; body: { data?: Record<string, string>; errors?: string[] } }> {
  const res = await fetch(`${r.url}/v1/transit/${path}`, { method: 'POST', headers: { 'x-vault-token': TOKEN }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { data?: Record<string, string> } };
}

/** The sum of a metric's samples whose line starts with `prefix` (e.g. `name{keyring="default"`). */
async function metric(r: Replica, prefix: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${r.h.ports.http}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(prefix)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

describe('transit data keys shared sealed through Redis (2 replicas, GCP KMS emulator)', { timeout: 180_000 }, () => {
  let redis: RedisServer;
  let emu: GcpKmsEmulator;
  let keyName: string;
  let replicas: Replica[];
  const sealed: Array<{ ciphertext: string; plaintext: string }> = [];

  before(async () => {
    redis = await startRedis();
    emu = await startGcpKmsEmulator();
    keyName = await emu.createKey('kekbroker-e2e', 'europe-west1', 'ring', 'kek');
    process.env['METADATA_SERVER_DETECTION'] = 'none';
    const gcpYaml = `{ type: gcp-kms, keyName: "${keyName}", endpoint: "${emu.endpoint}", insecureLoopback: true }`;
    const dir = await tempDir();
    replicas = [];
    for (const name of ['r1', 'r2']) {
      const ports = await allocateBrokerPorts();
      const transitPort = await freePort();
      const h = await startBroker(dir, config(ports, transitPort, name, redis.address, gcpYaml), ports, 'admin-token-fleet', name);
      replicas.push({ h, url: `http://127.0.0.1:${transitPort}` });
    }
    // The leader makes the cache-sealing key; both replicas must have it open before keys can be shared.
    await waitFor('both replicas share transit data keys', async () => {
      for (const r of replicas) if ((await metric(r, 'kekbroker_transit_data_keys_shared{keyring="default"')) !== 1) return false;
      return true;
    }, 30_000);
  });

  after(async () => {
    for (const r of replicas ?? []) await r.h.proc.kill('SIGKILL');
    await redis?.stop();
    await emu?.close();
  });

  const kms = (): { wraps: number; unwraps: number } => ({ wraps: emu.faults.callCount('Encrypt'), unwraps: emu.faults.callCount('Decrypt') });

  it(`${ENCRYPTS} encrypts over both replicas: data keys shared, at most ${MAX_MESSAGES} messages each fleet-wide, one KMS wrap per key`, async () => {
    const before = kms();
    let next = 0;
    // 4 workers, each request on the replica its index picks: both replicas encrypt concurrently.
    await Promise.all([0, 1, 2, 3].map(async () => {
      while (next < ENCRYPTS) {
        const i = next++;
        const plaintext = randomBytes(32).toString('base64');
        const r = await post(replicas[i % 2] as Replica, 'encrypt/app', { plaintext });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        sealed.push({ ciphertext: r.body.data?.['ciphertext'] as string, plaintext });
      }
    }));
    const uses = new Map<string, number>();
    for (const s of sealed) {
      const env = parseCiphertext(s.ciphertext).envelope.toString('base64');
      uses.set(env, (uses.get(env) ?? 0) + 1);
    }
    const counts = [...uses.values()].sort((a, b) => b - a);
    const keys = Math.ceil(ENCRYPTS / MAX_MESSAGES);
    assert.deepEqual(counts, [...Array(keys - 1).fill(MAX_MESSAGES), ENCRYPTS - (keys - 1) * MAX_MESSAGES], 'every data key used exactly up to its fleet-wide limit');
    assert.equal(kms().wraps - before.wraps, keys, 'one KMS wrap per data key for the whole fleet');
    const fromFleet = (await metric(replicas[0] as Replica, 'kekbroker_transit_data_keys_from_fleet_total')) + (await metric(replicas[1] as Replica, 'kekbroker_transit_data_keys_from_fleet_total'));
    assert.ok(fromFleet >= keys, `replicas adopted each other's data keys (${fromFleet})`);
  });

  it('each replica decrypts what either sealed with 0 KMS unwraps, every plaintext as sealed', async () => {
    const before = kms();
    for (const [i, s] of sealed.entries()) {
      for (const r of [replicas[(i + 1) % 2], replicas[i % 2]] as Replica[]) {
        const d = await post(r, 'decrypt/app', { ciphertext: s.ciphertext });
        assert.equal(d.status, 200, JSON.stringify(d.body));
        assert.equal(d.body.data?.['plaintext'], s.plaintext);
      }
    }
    assert.equal(kms().unwraps - before.unwraps, 0, 'no KMS unwrap: data keys came from the local caches and the sealed L2');
  });

  it('no data key is in Redis in the clear (every key and value dumped)', async () => {
    const gcp = fromConfig('gcp', { type: 'gcp-kms', keyName, endpoint: emu.endpoint, insecureLoopback: true });
    const dataKeys: Buffer[] = [];
    for (const env of new Set(sealed.map((s) => parseCiphertext(s.ciphertext).envelope.toString('base64')))) {
      const e = decodeEnvelope(Buffer.from(env, 'base64'));
      const ctx: WrapContext = { tenant: 'dev', keyring: 'default', envelopeVersion: e.version };
      const w = e.wraps[0] as { keyVersionRef: string; wrapped: Uint8Array };
      const k = await gcp.unwrap({ keyVersionRef: w.keyVersionRef, wrapped: Buffer.from(w.wrapped) }, ctx, AbortSignal.timeout(5000));
      dataKeys.push(openPayload(k, e.nonce, e.sealed, payloadAad('dev', e.header)));
    }
    assert.equal(dataKeys.length, 3, 'the three data keys, each recovered from the KMS');
    const names = redis.cli('--scan').split('\n').filter(Boolean);
    assert.ok(names.some((n) => n.endsWith(':cur')), `shared transit data keys are in Redis: ${names.join(' ')}`);
    const dump = await dumpRedis(redis);
    for (const k of dataKeys) {
      assert.equal(k.length, 32);
      for (const form of [k, Buffer.from(k.toString('base64')), Buffer.from(k.toString('hex'))]) assert.equal(dump.indexOf(form), -1, 'a data key in the clear in Redis');
    }
  });

  it('an admin invalidation drops the shared data keys: the next encrypts on both replicas make one new key', async () => {
    const r1 = replicas[0] as Replica;
    const res = await fetch(`http://127.0.0.1:${r1.h.ports.admin}/v1/admin/cache/invalidate`, {
      method: 'POST', headers: { authorization: `Bearer ${r1.h.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ keyring: 'default' }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(redis.cli('--scan').split('\n').filter((n) => n.endsWith(':cur')), [], 'shared data keys deleted from Redis');
    const old = new Set(sealed.map((s) => parseCiphertext(s.ciphertext).envelope.toString('base64')));
    const before = kms();
    await new Promise((r) => setTimeout(r, 200)); // the bus message reaches r2
    const envs = new Set<string>();
    for (const r of [...replicas, ...replicas]) {
      const e = await post(r, 'encrypt/app', { plaintext: 'aGVsbG8=' });
      assert.equal(e.status, 200);
      envs.add(parseCiphertext(e.body.data?.['ciphertext'] as string).envelope.toString('base64'));
    }
    assert.equal(envs.size, 1, 'both replicas use the one new shared key');
    assert.ok(!old.has([...envs][0] as string), 'not a dropped key');
    assert.equal(kms().wraps - before.wraps, 1);
  });

  it('Redis gone: a replica still encrypts and decrypts, with a local data key it reports in its metrics', async () => {
    await redis.stop();
    const r = replicas[0] as Replica;
    for (let i = 0; i < 3; i++) {
      const e = await post(r, 'encrypt/app', { plaintext: 'aGVsbG8=' });
      assert.equal(e.status, 200, JSON.stringify(e.body));
      const d = await post(r, 'decrypt/app', { ciphertext: e.body.data?.['ciphertext'] });
      assert.equal(d.body.data?.['plaintext'], 'aGVsbG8=');
    }
    await waitFor('local-only data key reported', async () => (await metric(r, 'kekbroker_transit_data_keys_local_only_total')) >= 1, 10_000);
    assert.equal(await metric(r, 'kekbroker_transit_data_keys_shared{keyring="default"'), 0);
  });
});

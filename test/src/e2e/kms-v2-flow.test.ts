/**
 * kube-apiserver → shim → broker → local key, with real processes and real sockets: the Status/Encrypt/
 * Decrypt flow exactly as the apiserver drives it, a cold restart of both processes, and a rotation.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parseKeyId } from '@kekbroker/core';
import { tempDir } from '@kekbroker/testkit';
import { KmsClient } from '../helpers/kms-client';
import { adminPost, allocateBrokerPorts, devBrokerConfig, startBroker, startShim, waitFor, type BrokerHandle, type BrokerPorts, type Proc } from '../helpers/processes';
import { recordSeed } from '../helpers/seeds';

const FQDN = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe('KMS v2 flow through shim and broker (local key)', { timeout: 120_000 }, () => {
  let dir: string;
  let ports: BrokerPorts;
  let broker: BrokerHandle;
  let shim: { proc: Proc; socket: string };
  let kms: KmsClient;
  const shimArgs = (): string[] => ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev', '--grace-ms', '2000'];

  before(async () => {
    dir = await tempDir();
    ports = await allocateBrokerPorts();
    broker = await startBroker(dir, devBrokerConfig(ports), ports, 'admin-secret-1');
    shim = await startShim(dir, shimArgs());
    kms = new KmsClient(shim.socket);
  });
  after(async () => {
    kms?.close();
    await shim?.proc.kill();
    await broker?.proc.kill();
  });

  it('creates the socket 0600 and the keystore 0600', async () => {
    assert.equal((await fs.stat(shim.socket)).mode & 0o777, 0o600);
    assert.equal((await fs.stat(`${dir}/keystore.json`)).mode & 0o777, 0o600);
  });

  it('Status answers version v2, healthz ok and a valid key_id', async () => {
    const s = await waitFor('status ok', () => kms.status().catch(() => undefined));
    assert.equal(s.version, 'v2');
    assert.equal(s.healthz, 'ok');
    assert.ok(s.key_id.length > 0 && Buffer.byteLength(s.key_id) <= 1024);
    assert.equal(parseKeyId(s.key_id)?.keyring, 'default');
    const again = await kms.status();
    assert.equal(again.key_id, s.key_id, 'key_id is stable between polls');
  });

  let first: { seed: Buffer; ciphertext: Buffer; keyId: string; annotations: Record<string, Buffer> };

  it('Encrypt of a 32-byte seed obeys the apiserver rules and Decrypt returns it', async () => {
    const seed = recordSeed(randomBytes(32));
    const status = await kms.status();
    const e = await kms.encrypt(Buffer.from(seed), 'uid-encrypt-1');
    assert.ok(e.ciphertext.length > 0 && e.ciphertext.length <= 1024, `ciphertext ${e.ciphertext.length} bytes`);
    assert.equal(e.key_id, status.key_id, 'Encrypt key_id must equal Status key_id');
    let annotationBytes = 0;
    for (const [k, v] of Object.entries(e.annotations)) {
      assert.match(k, FQDN);
      annotationBytes += k.length + v.length;
    }
    assert.ok(annotationBytes <= 32 * 1024);
    assert.ok(!e.ciphertext.includes(seed), 'the ciphertext does not contain the seed');
    const d = await kms.decrypt({ ciphertext: e.ciphertext, key_id: e.key_id, annotations: e.annotations });
    assert.deepEqual(d.plaintext, seed);
    first = { seed, ciphertext: e.ciphertext, keyId: e.key_id, annotations: e.annotations };
  });

  it('two Encrypts of the same seed give different ciphertexts', async () => {
    const seed = recordSeed(randomBytes(32));
    const a = await kms.encrypt(seed);
    const b = await kms.encrypt(seed);
    assert.notDeepEqual(a.ciphertext, b.ciphertext);
  });

  it('after a restart of broker and shim (cold cache) old ciphertexts still decrypt', async () => {
    kms.close();
    await shim.proc.kill('SIGTERM');
    assert.equal(await broker.proc.kill('SIGTERM'), 0, 'the broker exits 0 on SIGTERM');
    broker = await startBroker(dir, devBrokerConfig(ports), ports, 'admin-secret-1');
    shim = await startShim(dir, shimArgs());
    kms = new KmsClient(shim.socket);
    const s = await waitFor('status ok after restart', () => kms.status().catch(() => undefined));
    assert.equal(s.key_id, first.keyId, 'key_id survives a restart');
    const d = await kms.decrypt({ ciphertext: first.ciphertext, key_id: first.keyId, annotations: first.annotations });
    assert.deepEqual(d.plaintext, first.seed);
    const metrics = await (await fetch(`http://127.0.0.1:${ports.http}/metrics`)).text();
    assert.match(metrics, /kekbroker_provider_calls_total\{provider="local",op="unwrap",result="ok"[^}]*\} 1/, 'the cold decrypt reached the provider once');
  });

  it('rotation changes key_id; old ciphertexts still decrypt; new Encrypts use the new key_id', async () => {
    const rotated = await adminPost(broker, '/v1/admin/keyrings/default/rotate');
    assert.equal(rotated.status, 200);
    const newKeyId = rotated.body['keyId'] as string;
    assert.notEqual(newKeyId, first.keyId);
    assert.equal(rotated.body['previousKeyId'], first.keyId);
    // The shim learns the new key_id from the broker's status stream, not from a poll.
    await waitFor('shim reports the new key_id', async () => (await kms.status()).key_id === newKeyId, 5000);
    const d = await kms.decrypt({ ciphertext: first.ciphertext, key_id: first.keyId, annotations: first.annotations });
    assert.deepEqual(d.plaintext, first.seed);
    const seed = recordSeed(randomBytes(32));
    const e = await kms.encrypt(seed);
    assert.equal(e.key_id, newKeyId);
    assert.deepEqual((await kms.decrypt({ ciphertext: e.ciphertext, key_id: e.key_id, annotations: e.annotations })).plaintext, seed);
  });

  it('key_ids are never reused: a new keystore gives a different key_id', async () => {
    await shim.proc.kill();
    await broker.proc.kill();
    // Starting over deliberately: the keystore and its marker go (without the marker the broker refuses).
    await fs.rename(`${dir}/keystore.json`, `${dir}/keystore.json.old`);
    await fs.rename(`${dir}/keystore.json.created`, `${dir}/keystore.json.created.old`);
    broker = await startBroker(dir, devBrokerConfig(ports), ports, 'admin-secret-1');
    shim = await startShim(dir, shimArgs());
    kms.close();
    kms = new KmsClient(shim.socket);
    const s = await waitFor('status ok', () => kms.status().catch(() => undefined));
    assert.notEqual(s.key_id, first.keyId);
    // Ciphertexts of the old keystore are refused cleanly, not crashed on.
    await assert.rejects(kms.decrypt({ ciphertext: first.ciphertext, key_id: first.keyId, annotations: first.annotations }), (e: { code: number }) => e.code === 5 || e.code === 3);
    assert.ok(broker.proc.alive && shim.proc.alive);
  });
});

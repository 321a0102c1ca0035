/**
 * The KMS v2 flow with the keyring on each cloud emulator in turn: real broker and shim processes, the
 * real cloud SDK inside the broker, the emulator speaking the cloud's wire protocol.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@kekbroker/testkit';
import { KmsClient, grpcError } from '../helpers/kms-client';
import { LOG_FILES, adminPost, allocateBrokerPorts, restartBroker, startBroker, startShim, waitFor, type BrokerHandle, type BrokerPorts, type Proc } from '../helpers/processes';
import { assertNoSeedsInLogs, recordSeed } from '../helpers/seeds';
import { CLOUD_TARGETS } from './cloud-targets';

for (const target of CLOUD_TARGETS) {
  describe(`KMS v2 flow on a ${target.name} keyring`, { timeout: 180_000 }, () => {
    let cloud: Awaited<ReturnType<typeof target.start>>;
    let broker: BrokerHandle;
    let shim: { proc: Proc; socket: string };
    let kms: KmsClient;
    let ports: BrokerPorts;

    before(async () => {
      cloud = await target.start();
      const dir = await tempDir();
      ports = await allocateBrokerPorts();
      const config = `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
providers:
  cloud: ${cloud.providerYaml}
keyrings:
  default: { providers: [cloud] }
tenants:
  dev: { keyrings: [default] }
`;
      Object.assign(process.env, cloud.env);
      broker = await startBroker(dir, config, ports, 'admin-secret-cloud');
      shim = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev', '--grace-ms', '1000']);
      kms = new KmsClient(shim.socket);
    });
    after(async () => {
      kms?.close();
      await shim?.proc.kill();
      await broker?.proc.kill();
      await cloud?.stop();
    });

    const seed = recordSeed(randomBytes(32));
    let sealed: { ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> };

    it('Status, Encrypt (≤ 1 KiB, key_id = Status key_id) and Decrypt', async () => {
      const s = await waitFor('status ok', () => kms.status().catch(() => undefined));
      assert.equal(s.healthz, 'ok');
      sealed = await kms.encrypt(Buffer.from(seed));
      assert.ok(sealed.ciphertext.length <= 1024, `${sealed.ciphertext.length} bytes`);
      assert.equal(sealed.key_id, s.key_id);
      assert.deepEqual((await kms.decrypt(sealed)).plaintext, seed);
    });

    it('a cold Decrypt (after a broker restart) goes to the cloud KMS and succeeds', async () => {
      broker = await restartBroker(broker);
      await waitFor('status ok', () => kms.status().catch(() => undefined));
      const calls = cloud.faults.callCount();
      assert.deepEqual((await kms.decrypt(sealed)).plaintext, seed);
      assert.ok(cloud.faults.callCount() > calls, 'the emulator saw the unwrap');
    });

    it('rotation: key_id changes and the pre-rotation ciphertext still decrypts', async () => {
      const r = await adminPost(broker, '/v1/admin/keyrings/default/rotate');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.notEqual(r.body['keyId'], sealed.key_id);
      await waitFor('new key_id at the shim', async () => (await kms.status()).key_id === r.body['keyId'], 5000);
      broker = await restartBroker(broker); // cold again: the old version must unwrap at the KMS, not from cache
      await waitFor('status ok', () => kms.status().catch(() => undefined));
      assert.deepEqual((await kms.decrypt(sealed)).plaintext, seed);
      const fresh = await kms.encrypt(recordSeed(randomBytes(32)));
      assert.equal(fresh.key_id, r.body['keyId']);
    });

    it('a KMS outage turns into UNAVAILABLE at the apiserver, and recovers', async () => {
      broker = await restartBroker(broker); // empty cache so Decrypt must reach the KMS
      await waitFor('status ok', () => kms.status().catch(() => undefined));
      cloud.faults.add({ kind: 'outage' });
      cloud.onFaultsChanged();
      try {
        const e = await grpcError(kms.decrypt(sealed));
        assert.ok([14, 4].includes(e.code), `${e.code} ${e.details}`);
      } finally {
        cloud.faults.clear();
      }
      // The first call after the outage may still meet a channel in reconnect back-off (and a spent retry
      // budget): recovery means the calls succeed again within seconds, with the right seed.
      const back = await waitFor('decrypt recovers', () => kms.decrypt(sealed).catch(() => undefined), 15_000, 200);
      assert.deepEqual(back.plaintext, seed);
    });

    it('no log holds a seed', async () => {
      await assertNoSeedsInLogs(LOG_FILES);
    });
  });
}

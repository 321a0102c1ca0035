/**
 * One keyring over all three cloud emulators at once (the config `npm run emulators` prints): every wrap is
 * sealed under AWS, GCP and Azure, the envelope still fits the apiserver's 1 KiB, and with two clouds down
 * a cold Decrypt is served by the third.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeEnvelope } from '@kekbroker/core';
import { tempDir } from '@kekbroker/testkit';
import { KmsClient } from '../helpers/kms-client';
import { LOG_FILES, allocateBrokerPorts, restartBroker, startBroker, startShim, waitFor, type BrokerHandle, type Proc } from '../helpers/processes';
import { assertNoSeedsInLogs, recordSeed } from '../helpers/seeds';
import { AWS, AZURE, GCP } from './cloud-targets';

describe('a keyring over AWS, GCP and Azure at once', { timeout: 180_000 }, () => {
  const clouds: Array<Awaited<ReturnType<typeof AWS.start>>> = [];
  let broker: BrokerHandle;
  let shim: { proc: Proc; socket: string };
  let kms: KmsClient;

  before(async () => {
    for (const t of [AWS, GCP, AZURE]) clouds.push(await t.start());
    for (const c of clouds) Object.assign(process.env, c.env);
    const [aws, gcp, azure] = clouds as [(typeof clouds)[0], (typeof clouds)[0], (typeof clouds)[0]];
    const dir = await tempDir();
    const ports = await allocateBrokerPorts();
    const config = `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
providers:
  aws: ${aws.providerYaml}
  gcp: ${gcp.providerYaml}
  azure: ${azure.providerYaml}
keyrings:
  default: { providers: [aws, gcp, azure], minWraps: 3 }
tenants:
  dev: { keyrings: [default] }
`;
    broker = await startBroker(dir, config, ports, 'admin-secret-multi');
    shim = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev']);
    kms = new KmsClient(shim.socket);
    await waitFor('status ok', () => kms.status().catch(() => undefined));
  });
  after(async () => {
    kms?.close();
    await shim?.proc.kill();
    await broker?.proc.kill();
    for (const c of clouds) await c.stop();
  });

  const seed = recordSeed(randomBytes(32));
  let sealed: { ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> };

  it('Encrypt seals under all three clouds and stays within 1 KiB', async () => {
    sealed = await kms.encrypt(Buffer.from(seed));
    assert.ok(sealed.ciphertext.length <= 1024, `${sealed.ciphertext.length} bytes`);
    assert.deepEqual(decodeEnvelope(sealed.ciphertext).wraps.map((w) => w.providerId), ['aws', 'gcp', 'azure']);
  });

  it('with AWS and GCP down, a cold Decrypt is served by Azure', async () => {
    broker = await restartBroker(broker);
    await waitFor('status ok', () => kms.status().catch(() => undefined));
    for (const c of clouds.slice(0, 2)) {
      c.faults.add({ kind: 'outage' });
      c.onFaultsChanged();
    }
    try {
      const azureCalls = (clouds[2] as (typeof clouds)[0]).faults.callCount();
      assert.deepEqual((await kms.decrypt(sealed)).plaintext, seed);
      assert.ok((clouds[2] as (typeof clouds)[0]).faults.callCount() > azureCalls, 'Azure unwrapped it');
    } finally {
      for (const c of clouds) c.faults.clear();
    }
  });

  it('no log holds a seed', async () => {
    await assertNoSeedsInLogs(LOG_FILES);
  });
});

/**
 * What a caller learns, on a keyring backed by the AWS KMS emulator (real SDK in a real broker process):
 *  - an Encrypt whose envelope would exceed the apiserver's 1 KiB is INVALID_ARGUMENT before any KMS call
 *    (counted at the emulator);
 *  - a KMS refusal reaches the apiserver as a code, a short reason and a correlation id, while the key ARN
 *    and account stay in the broker log under that id.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { startAwsKmsEmulator, type AwsKmsEmulator } from '@kekbroker/emulators';
import { tempDir } from '@kekbroker/testkit';
import { KmsClient, grpcError } from '../helpers/kms-client';
import { LOG_FILES, allocateBrokerPorts, startBroker, startShim, waitFor, type BrokerHandle, type Proc } from '../helpers/processes';
import { assertNoSeedsInLogs, recordSeed } from '../helpers/seeds';

describe('caller-facing errors on an AWS KMS keyring', { timeout: 120_000 }, () => {
  let emu: AwsKmsEmulator;
  let key: { keyId: string; arn: string };
  let broker: BrokerHandle;
  let shim: { proc: Proc; socket: string };
  let kms: KmsClient;

  before(async () => {
    emu = await startAwsKmsEmulator();
    key = emu.createKey();
    const dir = await tempDir();
    const ports = await allocateBrokerPorts();
    Object.assign(process.env, { E2E_AWS_KEY: 'AKIDEXAMPLE', E2E_AWS_SECRET: 'not-a-secret', AWS_EC2_METADATA_DISABLED: 'true' });
    broker = await startBroker(dir, `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
providers:
  aws: { type: aws-kms, region: ${emu.region}, keyId: "${key.arn}", endpoint: "${emu.endpoint}", credentials: { source: env, accessKeyIdEnv: E2E_AWS_KEY, secretAccessKeyEnv: E2E_AWS_SECRET } }
keyrings:
  default: { providers: [aws] }
tenants:
  dev: { keyrings: [default] }
`, ports, 'admin-secret-callers');
    shim = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev']);
    kms = new KmsClient(shim.socket);
    await waitFor('status ok', () => kms.status().catch(() => undefined));
  });
  after(async () => {
    kms?.close();
    await shim?.proc.kill();
    await broker?.proc.kill();
    await emu?.close();
  });

  it('an 877-byte Encrypt is INVALID_ARGUMENT with no KMS call; the largest that fits works', async () => {
    const seed = recordSeed(randomBytes(32));
    assert.deepEqual((await kms.decrypt(await kms.encrypt(Buffer.from(seed)))).plaintext, seed); // as the apiserver starts
    const calls = emu.faults.callCount();
    const e = await grpcError(kms.encrypt(randomBytes(877)));
    assert.equal(e.code, Status.INVALID_ARGUMENT, e.details);
    const max = Number(/allows at most (\d+)/.exec(e.details)?.[1]);
    assert.ok(max > 32 && max < 877, e.details);
    assert.equal(emu.faults.callCount(), calls, 'no call reached the KMS');
    const tooBig = await grpcError(kms.encrypt(randomBytes(max + 1)));
    assert.equal(tooBig.code, Status.INVALID_ARGUMENT);
    assert.equal(emu.faults.callCount(), calls, 'no call reached the KMS');

    const big = recordSeed(randomBytes(max));
    const sealed = await kms.encrypt(Buffer.from(big));
    assert.equal(sealed.ciphertext.length, 1024, 'the largest plaintext fills the 1 KiB exactly');
    assert.deepEqual((await kms.decrypt(sealed)).plaintext, big);
  });

  it('a disabled key: the apiserver gets the code, a short reason and a correlation id; the ARN stays in the log', async () => {
    emu.disableKey(key.keyId);
    try {
      const e = await grpcError(kms.encrypt(recordSeed(randomBytes(32))));
      assert.equal(e.code, Status.PERMISSION_DENIED, e.details);
      assert.match(e.details, /^provider aws refused the broker's credentials or the key is disabled \(correlation id ([0-9a-f]{16})\)$/);
      for (const secret of [key.arn, key.keyId, emu.accountId]) assert.ok(!e.details.includes(secret), `caller sees ${secret}`);
      const id = /correlation id ([0-9a-f]{16})/.exec(e.details)?.[1] as string;
      const line = await broker.proc.waitForLogLine('the correlation id', (l) => l.includes(id));
      assert.ok(line.includes(key.arn), 'and the details for the operator');
    } finally {
      emu.enableKey(key.keyId);
    }
  });

  it('no log line holds a seed', async () => {
    assert.ok((await assertNoSeedsInLogs(LOG_FILES)) > 0);
  });
});

/**
 * Broker down: the shim coasts on its last status for the grace period (a broker takeover must not flip
 * the apiserver's readiness), then answers Status with a gRPC UNAVAILABLE within the apiserver's timeout;
 * when the broker is back, Status recovers without restarting the shim.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { tempDir } from '@kekbroker/testkit';
import { APISERVER_TIMEOUT_MS, KmsClient, grpcError } from '../helpers/kms-client';
import { allocateBrokerPorts, devBrokerConfig, startBroker, startShim, waitFor, type BrokerHandle, type BrokerPorts, type Proc } from '../helpers/processes';
import { recordSeed } from '../helpers/seeds';

const GRACE_MS = 1500;

describe('broker outage and recovery as the shim reports it', { timeout: 120_000 }, () => {
  let dir: string;
  let ports: BrokerPorts;
  let broker: BrokerHandle;
  let shim: { proc: Proc; socket: string };
  let kms: KmsClient;

  before(async () => {
    dir = await tempDir();
    ports = await allocateBrokerPorts();
    broker = await startBroker(dir, devBrokerConfig(ports), ports, 'admin-secret-3');
    shim = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev', '--grace-ms', String(GRACE_MS), '--budget-ms', '1000']);
    kms = new KmsClient(shim.socket);
    await waitFor('status ok', () => kms.status().catch(() => undefined));
  });
  after(async () => {
    kms?.close();
    await shim?.proc.kill();
    await broker?.proc.kill();
  });

  let keyId: string;
  let sealed: { ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> };
  const seed = recordSeed(randomBytes(32));

  it('SIGKILL of the broker: Status stays OK inside the grace period', async () => {
    sealed = await kms.encrypt(Buffer.from(seed));
    keyId = sealed.key_id;
    await broker.proc.kill('SIGKILL');
    const s = await kms.status();
    assert.equal(s.healthz, 'ok');
    assert.equal(s.key_id, keyId);
  });

  it('Encrypt during the outage fails with UNAVAILABLE inside the deadline budget, not a hang', async () => {
    // The client's deadline is the apiserver's 3 s: a hang would surface as DEADLINE_EXCEEDED instead.
    const e = await grpcError(kms.encrypt(randomBytes(32)));
    assert.equal(e.code, Status.UNAVAILABLE, e.details);
    assert.match(e.details, /no broker reachable/);
  });

  it('after the grace period Status is a gRPC UNAVAILABLE (not healthz "err" with OK), answered before the timeout', async () => {
    const e = await waitFor('Status to fail', async () => {
      try {
        await kms.status();
        return undefined;
      } catch (err) {
        return err as { code: number; details: string };
      }
    }, GRACE_MS + 10_000, 200);
    assert.equal(e.code, Status.UNAVAILABLE);
    assert.match(e.details, /broker unreachable/);
    const again = await grpcError(kms.status(APISERVER_TIMEOUT_MS));
    assert.equal(again.code, Status.UNAVAILABLE, 'answered from state, well inside the 3 s deadline');
  });

  it('the broker comes back: Status recovers and old ciphertexts decrypt, without restarting the shim', async () => {
    const shimPid = shim.proc.child.pid;
    broker = await startBroker(dir, devBrokerConfig(ports), ports, 'admin-secret-3');
    const s = await waitFor('Status to recover', () => kms.status().catch(() => undefined), 15_000, 100);
    assert.equal(s.healthz, 'ok');
    assert.equal(s.key_id, keyId);
    assert.equal(shim.proc.child.pid, shimPid);
    assert.ok(shim.proc.alive);
    assert.deepEqual((await kms.decrypt(sealed)).plaintext, seed);
  });
});

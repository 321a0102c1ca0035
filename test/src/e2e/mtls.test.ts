/**
 * The production path: broker with TLS and a client CA, shim authenticating with a client certificate
 * whose name maps to a tenant. Unmapped certificates and missing certificates are refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { makeTestPki, tempDir } from '@kekbroker/testkit';
import { brokerClient, unary } from '../helpers/broker-client';
import { KmsClient, grpcError } from '../helpers/kms-client';
import { LOG_FILES, allocateBrokerPorts, startBroker, startShim, waitFor, type BrokerHandle, type Proc } from '../helpers/processes';
import { assertNoSeedsInLogs, recordSeed } from '../helpers/seeds';

describe('mTLS between shim and broker', { timeout: 120_000 }, () => {
  let dir: string;
  let broker: BrokerHandle;
  let shim: { proc: Proc; socket: string };
  let kms: KmsClient;
  let pki: Awaited<ReturnType<typeof makeTestPki>>;
  let port: number;

  before(async () => {
    dir = await tempDir();
    pki = await makeTestPki('broker.kekbroker.test');
    const write = (name: string, text: string): Promise<void> => fs.writeFile(path.join(dir, name), text, { mode: 0o600 });
    const shimCert = await pki.client('cluster-a-shim');
    const strangerCert = await pki.client('stranger');
    await Promise.all([
      write('ca.pem', pki.ca.cert), write('server.pem', pki.server.cert), write('server-key.pem', pki.server.key),
      write('shim.pem', shimCert.cert), write('shim-key.pem', shimCert.key),
      write('stranger.pem', strangerCert.cert), write('stranger-key.pem', strangerCert.key),
    ]);
    const ports = await allocateBrokerPorts();
    port = ports.grpc;
    const config = `grpc:
  listen: "127.0.0.1:${ports.grpc}"
  tls: { certFile: server.pem, keyFile: server-key.pem, clientCaFile: ca.pem }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
providers:
  local: { type: local, keystore: ./keystore.json }
keyrings:
  cluster-a: { providers: [local] }
  cluster-b: { providers: [local] }
tenants:
  cluster-a: { keyrings: [cluster-a], clientCertNames: ["CN=cluster-a-shim"] }
`;
    broker = await startBroker(dir, config, ports, 'admin-secret-4');
    shim = await startShim(dir, [
      '--broker', `127.0.0.1:${ports.grpc}`, '--keyring', 'cluster-a',
      '--tls-ca', path.join(dir, 'ca.pem'), '--tls-cert', path.join(dir, 'shim.pem'), '--tls-key', path.join(dir, 'shim-key.pem'),
      '--tls-server-name', 'broker.kekbroker.test',
    ]);
    kms = new KmsClient(shim.socket);
  });
  after(async () => {
    kms?.close();
    await shim?.proc.kill();
    await broker?.proc.kill();
  });

  it('the shim authenticates with its certificate and the KMS v2 flow works', async () => {
    const s = await waitFor('status ok over mTLS', () => kms.status().catch(() => undefined));
    assert.match(s.key_id, /^kekbroker\/cluster-a\//);
    const seed = recordSeed(randomBytes(32));
    const e = await kms.encrypt(Buffer.from(seed));
    assert.deepEqual((await kms.decrypt(e)).plaintext, seed);
  });

  it('a certificate from the right CA but not mapped to a tenant is UNAUTHENTICATED', async () => {
    const creds = grpc.credentials.createSsl(
      await fs.readFile(path.join(dir, 'ca.pem')), await fs.readFile(path.join(dir, 'stranger-key.pem')), await fs.readFile(path.join(dir, 'stranger.pem')),
    );
    const c = brokerClient(port, { credentials: creds, serverName: 'broker.kekbroker.test' });
    const e = await grpcError(unary(c, 'Wrap', { keyring: 'cluster-a', plaintext: randomBytes(32) }));
    c.close();
    assert.equal(e.code, grpc.status.UNAUTHENTICATED);
    assert.match(e.details, /CN=stranger is not mapped to a tenant/);
  });

  it('a client without a certificate cannot connect', async () => {
    const creds = grpc.credentials.createSsl(await fs.readFile(path.join(dir, 'ca.pem')));
    const c = brokerClient(port, { credentials: creds, serverName: 'broker.kekbroker.test' });
    const e = await grpcError(unary(c, 'Wrap', { keyring: 'cluster-a', plaintext: randomBytes(32) }));
    c.close();
    assert.equal(e.code, grpc.status.UNAVAILABLE, e.details);
  });

  it('a plaintext (non-TLS) client cannot talk to the mTLS broker', async () => {
    const c = brokerClient(port);
    const e = await grpcError(unary(c, 'Wrap', { keyring: 'cluster-a', plaintext: randomBytes(32) }));
    c.close();
    assert.equal(e.code, grpc.status.UNAVAILABLE, e.details);
  });

  // Why a shim cannot serve shows in the Status error kube-apiserver logs and in a warn line of the shim.
  for (const [name, why, flags] of [
    ['an unmapped certificate', /CN=stranger is not mapped to a tenant/, { cert: 'stranger', keyring: 'cluster-a', serverName: 'broker.kekbroker.test' }],
    ['a keyring the tenant may not use', /tenant "cluster-a" may not use keyring "cluster-b"/, { cert: 'shim', keyring: 'cluster-b', serverName: 'broker.kekbroker.test' }],
    ['a TLS name mismatch', /does not match certificate|altnames/i, { cert: 'shim', keyring: 'cluster-a', serverName: 'wrong.kekbroker.test' }],
  ] as const) {
    it(`a shim that cannot serve says why: ${name}`, async () => {
      const s = await startShim(dir, [
        '--broker', `127.0.0.1:${port}`, '--keyring', flags.keyring, '--tls-server-name', flags.serverName,
        '--tls-ca', path.join(dir, 'ca.pem'), '--tls-cert', path.join(dir, `${flags.cert}.pem`), '--tls-key', path.join(dir, `${flags.cert}-key.pem`),
      ], `shim-${flags.cert}-${flags.keyring}-${flags.serverName.split('.')[0] ?? ''}`);
      const client = new KmsClient(s.socket);
      try {
        const details = await waitFor('a Status error with the reason', async () => {
          const e = await grpcError(client.status(2000));
          return why.test(e.details) ? e.details : undefined;
        });
        assert.match(details, /^no status from the broker yet \(broker 127\.0\.0\.1:\d+: (status watch|session): /);
        await s.proc.waitForLogLine('a warning with the reason', (l) => {
          const line = l.startsWith('{') ? (JSON.parse(l) as { level: string; why?: string }) : undefined;
          return line?.level === 'warn' && why.test(line.why ?? '');
        });
      } finally {
        client.close();
        await s.proc.kill();
      }
    });
  }

  it('no log holds a seed', async () => {
    await assertNoSeedsInLogs(LOG_FILES);
  });
});

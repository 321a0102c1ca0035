/**
 * Transit over HTTPS with mTLS identity: a client certificate named in transit.identities is a tenant with no
 * token (node-vault with its TLS request options); an unknown certificate or none gets 403; tokens still work.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import nodeVault from 'node-vault';
import { freePort, makeTestPki, tempDir, type Pem, type TestPki } from '@kekbroker/testkit';
import { allocateBrokerPorts, startBroker, type BrokerHandle } from '../helpers/processes';
import { TOKENS, b64, transitConfig } from '../helpers/transit';

function post(port: number, p: string, body: unknown, opts: { ca: string; client?: Pem; token?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = https.request(
      { host: '127.0.0.1', port, path: p, method: 'POST', ca: opts.ca, servername: 'localhost', ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}), headers: opts.token ? { 'x-vault-token': opts.token } : {} },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += String(c)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

describe('transit over mTLS', { timeout: 120_000 }, () => {
  let broker: BrokerHandle;
  let pki: TestPki;
  let port: number;
  let app: Pem;
  let stranger: Pem;

  before(async () => {
    const dir = await tempDir();
    pki = await makeTestPki('localhost');
    app = await pki.client('app-1');
    stranger = await pki.client('stranger');
    await fs.writeFile(path.join(dir, 'ca.pem'), pki.ca.cert);
    await fs.writeFile(path.join(dir, 'server.pem'), pki.server.cert);
    await fs.writeFile(path.join(dir, 'server.key'), pki.server.key, { mode: 0o600 });
    const ports = await allocateBrokerPorts();
    port = await freePort();
    const cfg = transitConfig(ports, port, 'transit', '    - { clientCertName: "CN=app-1", tenant: dev, keys: [app], operations: [encrypt, decrypt] }\n')
      .replace('  mount: transit\n', '  mount: transit\n  tls: { certFile: ./server.pem, keyFile: ./server.key, clientCaFile: ./ca.pem }\n');
    broker = await startBroker(dir, cfg, ports, 'admin-token-mtls');
  });
  after(async () => {
    await broker?.proc.kill();
  });

  it('a configured client certificate is an identity: node-vault with TLS options encrypts and decrypts', async () => {
    const vault = nodeVault({ endpoint: `https://localhost:${port}`, token: '', requestOptions: { ca: pki.ca.cert, cert: app.cert, key: app.key } });
    const pt = b64('over mutual TLS');
    const enc = await vault.write('transit/encrypt/app', { plaintext: pt });
    assert.match(enc.data.ciphertext, /^vault:v\d+:/);
    assert.equal((await vault.write('transit/decrypt/app', { ciphertext: enc.data.ciphertext })).data.plaintext, pt);
  });

  it('an unknown certificate, or none, gets 403; the certificate identity keeps its own policy; tokens still work', async () => {
    const body = { plaintext: b64('x') };
    assert.equal((await post(port, '/v1/transit/encrypt/app', body, { ca: pki.ca.cert, client: stranger })).status, 403);
    assert.equal((await post(port, '/v1/transit/encrypt/app', body, { ca: pki.ca.cert })).status, 403);
    assert.equal((await post(port, '/v1/transit/encrypt/orders', { ...body, context: b64('c') }, { ca: pki.ca.cert, client: app })).status, 403);
    assert.equal((await post(port, '/v1/transit/encrypt/app', body, { ca: pki.ca.cert, token: TOKENS.admin })).status, 200);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKekError } from '@kekbroker/core';
import { installLoopbackGuard } from '@kekbroker/testkit';
import { DEFAULTS, configSchema, fromConfig, type GcpKmsConfig } from './config';
import { splitEndpoint } from './sdk-client';

const KEY = 'projects/acme/locations/europe-west1/keyRings/kekbroker/cryptoKeys/kek';
const base: GcpKmsConfig = { type: 'gcp-kms', keyName: KEY };

function rejects(cfg: object, field: RegExp, id = 'gcp-prod'): void {
  assert.throws(() => fromConfig(id, cfg as GcpKmsConfig), (e: unknown) => isKekError(e) && e.code === 'invalid-input' && field.test(e.message));
}

describe('gcp-kms config', () => {
  it('the schema is closed and documented', () => {
    assert.equal(configSchema.additionalProperties, false);
    assert.deepEqual(configSchema.required, ['type', 'keyName']);
    for (const [name, prop] of Object.entries(configSchema.properties)) {
      assert.ok(typeof (prop as { description?: unknown }).description === 'string', `${name} has a description`);
    }
    for (const variant of configSchema.properties.credentials.oneOf) assert.equal(variant.additionalProperties, false);
    assert.ok(new RegExp(configSchema.properties.keyName.pattern).test(KEY));
    assert.ok(!new RegExp(configSchema.properties.keyName.pattern).test(`${KEY}/cryptoKeyVersions/1`));
    assert.equal(configSchema.properties.maxAttempts.default, DEFAULTS.maxAttempts);
  });

  it('builds a production provider (ADC) without touching the network', async () => {
    const guard = installLoopbackGuard();
    try {
      const p = fromConfig('gcp-prod', base);
      assert.equal(p.type, 'gcp-kms');
      assert.equal(p.id, 'gcp-prod');
      await p.close();
    } finally {
      guard.uninstall();
    }
    assert.deepEqual(guard.violations, []);
  });

  it('accepts the emulator form and a credentials file', async () => {
    await fromConfig('emu', { ...base, endpoint: '127.0.0.1:9443', insecureLoopback: true }).close();
    await fromConfig('emu', { ...base, endpoint: 'localhost:9443', insecureLoopback: true, credentials: { source: 'default' } }).close();
    await fromConfig('psc', { ...base, endpoint: 'kms.p.example.internal:443', credentials: { source: 'file', file: '/var/run/secrets/gcp/sa.json' }, maxAttempts: 2 }).close();
  });

  it('rejects bad sections, naming the field', () => {
    rejects(base, /provider id/, 'Bad_Id');
    rejects({ ...base, type: 'aws-kms' }, /\.type/);
    rejects({ ...base, keyName: `${KEY}/cryptoKeyVersions/1` }, /\.keyName/);
    rejects({ ...base, keyName: 'kek' }, /\.keyName/);
    rejects({ ...base, keyname: KEY }, /\.keyname is not a gcp-kms option/);
    rejects({ ...base, endpoint: 'https://cloudkms.googleapis.com' }, /\.endpoint/);
    rejects({ ...base, insecureLoopback: true }, /insecureLoopback/);
    rejects({ ...base, endpoint: '10.0.0.8:9443', insecureLoopback: true }, /insecureLoopback needs a loopback/);
    rejects({ ...base, endpoint: '127.0.0.1:9443', insecureLoopback: true, credentials: { source: 'file', file: '/x.json' } }, /credentials cannot/);
    rejects({ ...base, credentials: { source: 'file' } }, /\.credentials/);
    rejects({ ...base, maxAttempts: 0 }, /\.maxAttempts/);
    rejects({ ...base, requestTimeoutMs: 1.5 }, /\.requestTimeoutMs/);
    rejects({ ...base, callTimeoutMs: 10 }, /\.callTimeoutMs/);
    rejects({ ...base, rotationTimeoutMs: 10_000_000 }, /\.rotationTimeoutMs/);
  });

  it('splits host:port endpoints, IPv6 included', () => {
    assert.deepEqual(splitEndpoint('127.0.0.1:9443'), { host: '127.0.0.1', port: 9443 });
    assert.deepEqual(splitEndpoint('[::1]:443'), { host: '::1', port: 443 });
    assert.throws(() => splitEndpoint('cloudkms.googleapis.com'));
    assert.throws(() => splitEndpoint('host:70000'));
  });
});

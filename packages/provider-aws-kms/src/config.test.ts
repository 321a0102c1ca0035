import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAwsKmsEmulator, type AwsKmsEmulator } from '@kekbroker/emulators';
import { isKekError, type ErrorCode } from '@kekbroker/core';
import { DEFAULTS, configSchema, fromConfig, type AwsKmsConfig } from './config';

const CTX = { tenant: 'tenant-a', keyring: 'prod', envelopeVersion: 1 };

function throwsCode(fn: () => unknown, code: ErrorCode, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isKekError(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

/** Every object in the schema (including oneOf branches) must refuse unknown keys. */
function objectsOf(schema: unknown, at = '$'): Array<[string, Record<string, unknown>]> {
  if (typeof schema !== 'object' || schema === null) return [];
  const s = schema as Record<string, unknown>;
  const out: Array<[string, Record<string, unknown>]> = s.type === 'object' ? [[at, s]] : [];
  for (const [k, v] of Object.entries(s)) {
    if (Array.isArray(v)) v.forEach((x, i) => out.push(...objectsOf(x, `${at}.${k}[${i}]`)));
    else if (typeof v === 'object') out.push(...objectsOf(v, `${at}.${k}`));
  }
  return out;
}

describe('aws-kms config', () => {
  it('the schema refuses unknown keys at every level and documents every property', () => {
    const objs = objectsOf(configSchema);
    assert.ok(objs.length >= 4);
    for (const [at, o] of objs) assert.equal(o.additionalProperties, false, at);
    for (const [name, p] of Object.entries(configSchema.properties)) assert.ok(typeof (p as { description?: unknown }).description === 'string', name);
    assert.deepEqual([...configSchema.required], ['type', 'region', 'keyId']);
    for (const k of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>) assert.equal(configSchema.properties[k].default, DEFAULTS[k], k);
  });

  it('fromConfig names the field at fault', () => {
    const base: AwsKmsConfig = { type: 'aws-kms', region: 'eu-west-1', keyId: 'alias/k', credentials: { source: 'env', accessKeyIdEnv: 'KEKBROKER_UNSET_1', secretAccessKeyEnv: 'KEKBROKER_UNSET_2' } };
    throwsCode(() => fromConfig('aws', { ...base, region: 'Europe' }), 'invalid-input', /providers\.aws\.region/);
    throwsCode(() => fromConfig('aws', { ...base, keyId: ' ' }), 'invalid-input', /providers\.aws\.keyId/);
    throwsCode(() => fromConfig('aws', { ...base, endpoint: 'ftp://x' }), 'invalid-input', /providers\.aws\.endpoint/);
    throwsCode(() => fromConfig('aws', { ...base, maxAttempts: 9 }), 'invalid-input', /maxAttempts/);
    throwsCode(() => fromConfig('AWS!', base), 'invalid-input', /provider id/);
    throwsCode(() => fromConfig('aws', base), 'invalid-input', /KEKBROKER_UNSET_1, which is not set/);
  });
});

describe('aws-kms credentials from a file', () => {
  let emu: AwsKmsEmulator;
  let dir: string;
  before(async () => {
    emu = await startAwsKmsEmulator();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kekbroker-aws-'));
  });
  after(async () => {
    await emu.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a JSON credentials file works, and a missing one is permission-denied naming the file', async () => {
    const k = emu.createKey();
    const file = path.join(dir, 'aws.json');
    await fs.writeFile(file, JSON.stringify({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'test-secret' }), { mode: 0o600 });
    const cfg = (f: string): AwsKmsConfig => ({ type: 'aws-kms', region: emu.region, keyId: k.keyId, endpoint: emu.endpoint, credentials: { source: 'file', file: f } });
    const good = fromConfig('aws-file', cfg(file));
    const bad = fromConfig('aws-file', cfg(path.join(dir, 'absent.json')));
    try {
      const w = await good.wrap(Buffer.alloc(32, 1), CTX, AbortSignal.timeout(5000));
      assert.deepEqual(await good.unwrap(w, CTX, AbortSignal.timeout(5000)), Buffer.alloc(32, 1));
      await assert.rejects(bad.wrap(Buffer.alloc(32, 1), CTX, AbortSignal.timeout(5000)), (e: unknown) => {
        assert.ok(isKekError(e));
        assert.equal(e.code, 'permission-denied');
        assert.match(e.message, /absent\.json.*ENOENT/);
        return true;
      });
    } finally {
      await good.close();
      await bad.close();
    }
  });
});

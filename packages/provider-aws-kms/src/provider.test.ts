/**
 * AwsKmsProvider through the real SDK against the emulator: version refs, rotation (synchronous,
 * asynchronous, at the lifetime limit, past the deadline), following automatic rotation and alias
 * re-pointing, probe, and the unwrap checks that happen before any KMS call.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAwsKmsEmulator, type AwsKmsEmulator } from '@kekbroker/emulators';
import { isKekError, type ErrorCode, type WrapContext } from '@kekbroker/core';
import { fromConfig, type AwsKmsConfig } from './config';
import type { AwsKmsProvider } from './provider';
import { parseVersionRef } from './version-ref';

const CTX: WrapContext = { tenant: 'tenant-a', keyring: 'prod', envelopeVersion: 1 };
const SEED = Buffer.alloc(32, 9);
const sig = (ms = 10_000): AbortSignal => AbortSignal.timeout(ms);

process.env.KEKBROKER_TEST_AWS_AKID = 'AKIDEXAMPLE';
process.env.KEKBROKER_TEST_AWS_SECRET = 'test-secret';

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isKekError(e), `expected a KekError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

describe('AwsKmsProvider against the emulator', () => {
  let emu: AwsKmsEmulator;
  const open: AwsKmsProvider[] = [];
  const provider = (keyId: string, extra: Partial<AwsKmsConfig> = {}): AwsKmsProvider => {
    const p = fromConfig('aws-test', {
      type: 'aws-kms',
      region: emu.region,
      keyId,
      endpoint: emu.endpoint,
      credentials: { source: 'env', accessKeyIdEnv: 'KEKBROKER_TEST_AWS_AKID', secretAccessKeyEnv: 'KEKBROKER_TEST_AWS_SECRET' },
      ...extra,
    });
    open.push(p);
    return p;
  };

  before(async () => {
    emu = await startAwsKmsEmulator({ onDemandRotationLimit: 2 });
  });
  after(async () => {
    for (const p of open) await p.close();
    await emu.close();
  });

  it('version refs are <key ARN>#<key material id>, whatever form keyId takes', async () => {
    const k = emu.createKey({ alias: 'refs' });
    const refs = new Set<string>();
    for (const keyId of [k.keyId, k.arn, 'alias/refs', `arn:aws:kms:${emu.region}:${emu.accountId}:alias/refs`]) {
      const p = provider(keyId);
      const w = await p.wrap(SEED, CTX, sig());
      refs.add(w.keyVersionRef);
      assert.deepEqual(await p.unwrap(w, CTX, sig()), SEED);
    }
    assert.equal(refs.size, 1);
    const ref = parseVersionRef([...refs][0] ?? '');
    assert.equal(ref?.arn, k.arn);
    assert.match(ref?.keyMaterialId ?? '', /^[0-9a-f]{64}$/);
  });

  it('a burst of first wraps makes one DescribeKey call', async () => {
    const k = emu.createKey();
    const p = provider(k.keyId);
    const before = emu.faults.callCount('DescribeKey');
    await Promise.all(Array.from({ length: 8 }, () => p.wrap(SEED, CTX, sig())));
    assert.equal(emu.faults.callCount('DescribeKey') - before, 1);
    await p.describe(sig());
    assert.equal(emu.faults.callCount('DescribeKey') - before, 1, 'describe() is served from the cache');
  });

  it('a re-created key under the same alias never reuses a ref; old wraps still unwrap', async () => {
    const k1 = emu.createKey({ alias: 'moving' });
    const p = provider('alias/moving');
    const old = await p.wrap(SEED, CTX, sig());
    const k2 = emu.createKey();
    emu.updateAlias('moving', k2.keyId);
    await p.probe(sig());
    const neu = await p.wrap(SEED, CTX, sig());
    assert.equal(parseVersionRef(old.keyVersionRef)?.arn, k1.arn);
    assert.equal(parseVersionRef(neu.keyVersionRef)?.arn, k2.arn);
    assert.deepEqual(await p.unwrap(old, CTX, sig()), SEED, 'Decrypt names the ARN from the ref, not the alias');
    assert.deepEqual(await p.unwrap(neu, CTX, sig()), SEED);
  });

  it('probe() follows an AWS automatic rotation into the ref', async () => {
    const k = emu.createKey();
    const p = provider(k.keyId);
    const old = await p.wrap(SEED, CTX, sig());
    emu.rotateKey(k.keyId);
    assert.equal((await p.describe(sig())).currentVersionRef, old.keyVersionRef, 'cached until probe or rotate');
    await p.probe(sig());
    const d = await p.describe(sig());
    assert.notEqual(d.currentVersionRef, old.keyVersionRef);
    assert.equal(parseVersionRef(d.currentVersionRef)?.arn, k.arn);
    assert.deepEqual(await p.unwrap(old, CTX, sig()), SEED);
  });

  it('rotate() stops at the lifetime limit of on-demand rotations with an actionable error', async () => {
    const k = emu.createKey();
    const p = provider(k.keyId);
    const refs = [(await p.describe(sig())).currentVersionRef];
    refs.push((await p.rotate(sig())).currentVersionRef);
    refs.push((await p.rotate(sig())).currentVersionRef);
    assert.equal(new Set(refs).size, 3);
    const calls = emu.faults.callCount('RotateKeyOnDemand');
    await rejectsWith(p.rotate(sig()), 'permission-denied', /25 per key.*new KMS key/);
    assert.equal(emu.faults.callCount('RotateKeyOnDemand') - calls, 1, 'the refused rotation is not retried');
    assert.equal((await p.describe(sig())).currentVersionRef, refs[2]);
  });

  it('probe() reports a disabled key as permission-denied and passes again once enabled', async () => {
    const k = emu.createKey();
    const p = provider(k.keyId);
    await p.probe(sig());
    emu.disableKey(k.keyId);
    await rejectsWith(p.probe(sig()), 'permission-denied', /is Disabled: enable it/);
    emu.enableKey(k.keyId);
    await p.probe(sig());
  });

  it('unwrap refuses foreign refs before calling KMS, and blobs of another key at KMS', async () => {
    const a = emu.createKey();
    const b = emu.createKey();
    const pa = provider(a.keyId);
    const pb = provider(b.keyId);
    const wa = await pa.wrap(SEED, CTX, sig());
    const calls = emu.faults.callCount('Decrypt');
    await rejectsWith(pa.unwrap({ ...wa, keyVersionRef: 'local:0123456789abcdef:v1' }, CTX, sig()), 'corrupt');
    await rejectsWith(pa.unwrap({ ...wa, keyVersionRef: wa.keyVersionRef.replace(emu.region, 'eu-west-3') }, CTX, sig()), 'not-found');
    await rejectsWith(pa.unwrap({ ...wa, wrapped: new Uint8Array(0) }, CTX, sig()), 'corrupt');
    assert.equal(emu.faults.callCount('Decrypt'), calls, 'no KMS call for refs we cannot serve');
    const wb = await pb.wrap(SEED, CTX, sig());
    await rejectsWith(pa.unwrap({ ...wb, keyVersionRef: wa.keyVersionRef }, CTX, sig()), 'corrupt', /not produced by AWS KMS key/);
  });

  it('wrap validates its input before any KMS call', async () => {
    const p = provider(emu.createKey().keyId);
    await rejectsWith(p.wrap(SEED, { ...CTX, tenant: 'Not A Label' }, sig()), 'invalid-input');
    await rejectsWith(p.wrap(Buffer.alloc(0), CTX, sig()), 'invalid-input');
  });

  it('a missing key is not-found and names the key and what to check', async () => {
    const p = provider('alias/never-created');
    await rejectsWith(p.wrap(SEED, CTX, sig()), 'not-found', /alias\/never-created.*keyId and region/);
  });
});

describe('AwsKmsProvider with asynchronous rotation', () => {
  let emu: AwsKmsEmulator;
  before(async () => {
    emu = await startAwsKmsEmulator({ rotationLagMs: 300 });
  });
  after(async () => {
    await emu.close();
  });

  const make = (keyId: string): AwsKmsProvider =>
    fromConfig('aws-async', {
      type: 'aws-kms', region: emu.region, keyId, endpoint: emu.endpoint,
      credentials: { source: 'env', accessKeyIdEnv: 'KEKBROKER_TEST_AWS_AKID', secretAccessKeyEnv: 'KEKBROKER_TEST_AWS_SECRET' },
    });

  it('rotate() waits until KMS reports the new material, so the new ref names what Encrypt uses', async () => {
    const k = emu.createKey();
    const p = make(k.keyId);
    try {
      const before = await p.describe(sig());
      const after = await p.rotate(sig());
      assert.notEqual(after.currentVersionRef, before.currentVersionRef);
      const w = await p.wrap(SEED, CTX, sig());
      assert.equal(w.keyVersionRef, after.currentVersionRef);
      assert.ok(emu.faults.callCount('DescribeKey') >= 3, 'polled while the rotation was in progress');
    } finally {
      await p.close();
    }
  });

  it('a rotation outliving the deadline is a timeout; the next probe adopts the new material', async () => {
    const k = emu.createKey();
    const p = make(k.keyId);
    try {
      const before = await p.describe(sig());
      await rejectsWith(p.rotate(AbortSignal.timeout(120)), 'timeout', /next probe/);
      await new Promise((r) => setTimeout(r, 400));
      await p.probe(sig());
      assert.notEqual((await p.describe(sig())).currentVersionRef, before.currentVersionRef);
    } finally {
      await p.close();
    }
  });
});

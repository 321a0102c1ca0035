/**
 * Wire-level tests of the AWS KMS emulator with plain HTTP requests (no SDK), so that what is asserted is
 * the protocol itself: target routing, base64 blobs, error `__type` + status, EncryptionContext as AAD,
 * key materials, faults. The SDK-level behaviour is tested in provider-aws-kms.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAwsKmsEmulator, type AwsKmsEmulator } from './server';

interface Answer {
  status: number;
  requestId: string | null;
  body: Record<string, unknown>;
}

async function call(emu: AwsKmsEmulator, op: string, body: unknown, signal?: AbortSignal): Promise<Answer> {
  const res = await fetch(`${emu.endpoint}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `TrentService.${op}` },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  return { status: res.status, requestId: res.headers.get('x-amzn-requestid'), body: (await res.json()) as Record<string, unknown> };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const CTX = { 'kekbroker:tenant': 't1', 'kekbroker:keyring': 'prod' };

function assertError(a: Answer, status: number, type: string): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(a.body.__type, type);
  assert.equal(typeof a.body.message, 'string');
}

describe('AWS KMS emulator (wire)', () => {
  let emu: AwsKmsEmulator;
  let key: { keyId: string; arn: string };
  before(async () => {
    emu = await startAwsKmsEmulator({ onDemandRotationLimit: 2 });
    key = emu.createKey({ alias: 'main' });
  });
  after(async () => {
    await emu.close();
  });

  it('encrypts and decrypts without a KeyId, answering ARNs and a request id', async () => {
    const enc = await call(emu, 'Encrypt', { KeyId: key.keyId, Plaintext: b64('secret-dek'), EncryptionContext: CTX });
    assert.equal(enc.status, 200);
    assert.equal(enc.body.KeyId, key.arn);
    assert.match(enc.requestId ?? '', /^[0-9a-f-]{36}$/);
    assert.ok(!Buffer.from(String(enc.body.CiphertextBlob), 'base64').includes(Buffer.from('secret-dek')));
    const dec = await call(emu, 'Decrypt', { CiphertextBlob: enc.body.CiphertextBlob, EncryptionContext: CTX });
    assert.equal(dec.status, 200);
    assert.equal(Buffer.from(String(dec.body.Plaintext), 'base64').toString(), 'secret-dek');
    assert.equal(dec.body.KeyId, key.arn);
    assert.match(String(dec.body.KeyMaterialId), /^[0-9a-f]{64}$/);
  });

  it('resolves key id, key ARN, alias name and alias ARN; refuses other names as NotFoundException', async () => {
    for (const ref of [key.keyId, key.arn, 'alias/main', `arn:aws:kms:us-east-1:111122223333:alias/main`]) {
      const d = await call(emu, 'DescribeKey', { KeyId: ref });
      assert.equal(d.status, 200, ref);
      assert.equal((d.body.KeyMetadata as Record<string, unknown>).Arn, key.arn);
    }
    assertError(await call(emu, 'DescribeKey', { KeyId: 'alias/nope' }), 400, 'NotFoundException');
    assertError(await call(emu, 'DescribeKey', { KeyId: key.arn.replace('us-east-1', 'eu-west-1') }), 400, 'NotFoundException');
    assertError(await call(emu, 'Encrypt', { KeyId: '00000000-0000-0000-0000-000000000000', Plaintext: b64('x') }), 400, 'NotFoundException');
  });

  it('binds the EncryptionContext as AAD: any order decrypts, another context is InvalidCiphertextException', async () => {
    const enc = await call(emu, 'Encrypt', { KeyId: 'alias/main', Plaintext: b64('k'), EncryptionContext: CTX });
    const reordered = { 'kekbroker:keyring': 'prod', 'kekbroker:tenant': 't1' };
    assert.equal((await call(emu, 'Decrypt', { CiphertextBlob: enc.body.CiphertextBlob, EncryptionContext: reordered })).status, 200);
    for (const ctx of [{ ...CTX, 'kekbroker:tenant': 't2' }, { 'kekbroker:tenant': 't1' }, undefined, { ...CTX, 'kekbroker:Tenant': 't1' }]) {
      assertError(await call(emu, 'Decrypt', { CiphertextBlob: enc.body.CiphertextBlob, EncryptionContext: ctx }), 400, 'InvalidCiphertextException');
    }
    const bytes = Buffer.from(String(enc.body.CiphertextBlob), 'base64');
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 1;
    assertError(await call(emu, 'Decrypt', { CiphertextBlob: bytes.toString('base64'), EncryptionContext: CTX }), 400, 'InvalidCiphertextException');
    assertError(await call(emu, 'Decrypt', { CiphertextBlob: b64('short') }), 400, 'InvalidCiphertextException');
  });

  it('Decrypt with a KeyId other than the blob\'s key is IncorrectKeyException', async () => {
    const other = emu.createKey();
    const enc = await call(emu, 'Encrypt', { KeyId: key.arn, Plaintext: b64('k') });
    assertError(await call(emu, 'Decrypt', { CiphertextBlob: enc.body.CiphertextBlob, KeyId: other.arn }), 400, 'IncorrectKeyException');
    assert.equal((await call(emu, 'Decrypt', { CiphertextBlob: enc.body.CiphertextBlob, KeyId: 'alias/main' })).status, 200);
  });

  it('a disabled key answers 409 DisabledException to crypto calls but still describes itself', async () => {
    const k = emu.createKey({ alias: 'to-disable' });
    const enc = await call(emu, 'Encrypt', { KeyId: k.keyId, Plaintext: b64('k') });
    assert.equal((await call(emu, 'DisableKey', { KeyId: 'alias/to-disable' })).status, 200);
    assertError(await call(emu, 'Encrypt', { KeyId: k.keyId, Plaintext: b64('k') }), 409, 'DisabledException');
    assertError(await call(emu, 'Decrypt', { CiphertextBlob: enc.body.CiphertextBlob }), 409, 'DisabledException');
    const d = await call(emu, 'DescribeKey', { KeyId: k.keyId });
    assert.deepEqual([(d.body.KeyMetadata as Record<string, unknown>).Enabled, (d.body.KeyMetadata as Record<string, unknown>).KeyState], [false, 'Disabled']);
    assert.equal((await call(emu, 'EnableKey', { KeyId: k.arn })).status, 200);
    assert.equal((await call(emu, 'Decrypt', { CiphertextBlob: enc.body.CiphertextBlob })).status, 200);
  });

  it('a key pending deletion answers 409 KMSInvalidStateException; cancelling leaves it Disabled', async () => {
    const k = emu.createKey();
    const s = await call(emu, 'ScheduleKeyDeletion', { KeyId: k.keyId, PendingWindowInDays: 7 });
    assert.equal(s.body.KeyState, 'PendingDeletion');
    assertError(await call(emu, 'Encrypt', { KeyId: k.keyId, Plaintext: b64('k') }), 409, 'KMSInvalidStateException');
    await call(emu, 'CancelKeyDeletion', { KeyId: k.keyId });
    assertError(await call(emu, 'Encrypt', { KeyId: k.keyId, Plaintext: b64('k') }), 409, 'DisabledException');
  });

  it('on-demand rotation adds key material, old blobs still decrypt, and the lifetime limit is enforced', async () => {
    const k = emu.createKey();
    const material = async (): Promise<unknown> => ((await call(emu, 'DescribeKey', { KeyId: k.keyId })).body.KeyMetadata as Record<string, unknown>).CurrentKeyMaterialId;
    const m1 = await material();
    const old = await call(emu, 'Encrypt', { KeyId: k.keyId, Plaintext: b64('old') });
    const r = await call(emu, 'RotateKeyOnDemand', { KeyId: k.arn });
    assert.deepEqual([r.status, r.body.KeyId], [200, k.keyId]);
    const m2 = await material();
    assert.notEqual(m2, m1);
    const dec = await call(emu, 'Decrypt', { CiphertextBlob: old.body.CiphertextBlob });
    assert.deepEqual([Buffer.from(String(dec.body.Plaintext), 'base64').toString(), dec.body.KeyMaterialId], ['old', m1]);
    const neu = await call(emu, 'Encrypt', { KeyId: k.keyId, Plaintext: b64('new') });
    assert.equal((await call(emu, 'Decrypt', { CiphertextBlob: neu.body.CiphertextBlob })).body.KeyMaterialId, m2);
    // Automatic rotation (the handle) does not count; the limit of 2 on-demand rotations does.
    emu.rotateKey(k.keyId);
    assert.equal((await call(emu, 'RotateKeyOnDemand', { KeyId: k.keyId })).status, 200);
    assertError(await call(emu, 'RotateKeyOnDemand', { KeyId: k.keyId }), 400, 'LimitExceededException');
  });

  it('routes only TrentService targets and validates input like KMS', async () => {
    assertError(await call(emu, 'Frobnicate', {}), 400, 'UnknownOperationException');
    assertError(await call(emu, 'Encrypt', '{not json'), 400, 'SerializationException');
    assertError(await call(emu, 'Encrypt', { KeyId: key.keyId, Plaintext: Buffer.alloc(4097, 1).toString('base64') }), 400, 'ValidationException');
    assertError(await call(emu, 'Encrypt', { Plaintext: b64('x') }), 400, 'ValidationException');
    assertError(await call(emu, 'Encrypt', { KeyId: key.keyId, Plaintext: b64('x'), EncryptionContext: { a: 1 } }), 400, 'SerializationException');
  });

  it('GenerateDataKey, ReEncrypt and ListKeys follow the KMS shapes', async () => {
    const g = await call(emu, 'GenerateDataKey', { KeyId: 'alias/main', KeySpec: 'AES_256', EncryptionContext: CTX });
    assert.equal(Buffer.from(String(g.body.Plaintext), 'base64').length, 32);
    const other = emu.createKey();
    const re = await call(emu, 'ReEncrypt', { CiphertextBlob: g.body.CiphertextBlob, SourceEncryptionContext: CTX, DestinationKeyId: other.keyId });
    assert.deepEqual([re.body.SourceKeyId, re.body.KeyId], [key.arn, other.arn]);
    const d = await call(emu, 'Decrypt', { CiphertextBlob: re.body.CiphertextBlob });
    assert.equal(d.body.Plaintext, g.body.Plaintext);
    const page = await call(emu, 'ListKeys', { Limit: 1 });
    assert.equal((page.body.Keys as unknown[]).length, 1);
    assert.equal(page.body.Truncated, true);
    const rest = await call(emu, 'ListKeys', { Marker: page.body.NextMarker });
    assert.ok((rest.body.Keys as Array<{ KeyArn: string }>).every((k) => k.KeyArn.startsWith('arn:aws:kms:us-east-1:111122223333:key/')));
  });

  it('faults: throttle (400), error (500), per key by alias, counted, and corrupt blobs', async () => {
    const other = emu.createKey({ alias: 'other' });
    emu.faults.add({ kind: 'throttle', key: 'alias/other', count: 1 });
    assert.equal((await call(emu, 'Encrypt', { KeyId: key.keyId, Plaintext: b64('x') })).status, 200, 'rule for another key');
    assertError(await call(emu, 'Encrypt', { KeyId: other.arn, Plaintext: b64('x') }), 400, 'ThrottlingException');
    assert.equal((await call(emu, 'Encrypt', { KeyId: other.arn, Plaintext: b64('x') })).status, 200, 'count consumed');
    emu.faults.add({ kind: 'error', count: 1 });
    assertError(await call(emu, 'DescribeKey', { KeyId: key.keyId }), 500, 'KMSInternalException');
    emu.faults.add({ kind: 'corrupt', count: 1 });
    const bad = await call(emu, 'Encrypt', { KeyId: key.keyId, Plaintext: b64('x'), EncryptionContext: CTX });
    assert.equal(bad.status, 200);
    assertError(await call(emu, 'Decrypt', { CiphertextBlob: bad.body.CiphertextBlob, EncryptionContext: CTX }), 400, 'InvalidCiphertextException');
  });

  it('injected errors and a denying key policy reach the wire with their modelled status', async () => {
    emu.injectError({ type: 'DependencyTimeoutException', count: 1 });
    assertError(await call(emu, 'DescribeKey', { KeyId: key.keyId }), 503, 'DependencyTimeoutException');
    const k = emu.createKey();
    emu.denyAccess(k.keyId);
    assertError(await call(emu, 'Encrypt', { KeyId: k.keyId, Plaintext: b64('x') }), 400, 'AccessDeniedException');
    emu.denyAccess(k.keyId, false);
    assert.equal((await call(emu, 'Encrypt', { KeyId: k.keyId, Plaintext: b64('x') })).status, 200);
  });

  it('a global outage resets connections until cleared', async () => {
    emu.faults.add({ kind: 'outage' });
    emu.onFaultsChanged();
    await assert.rejects(call(emu, 'DescribeKey', { KeyId: key.keyId }));
    emu.faults.clear();
    // fetch may still hold a pooled socket the outage reset; like the SDK, allow one retry on a new one.
    const again = await call(emu, 'DescribeKey', { KeyId: key.keyId }).catch(() => call(emu, 'DescribeKey', { KeyId: key.keyId }));
    assert.equal(again.status, 200);
  });

  it('injected latency ends when the client goes away', async () => {
    emu.faults.add({ kind: 'latency', ms: 60_000 });
    try {
      await assert.rejects(call(emu, 'DescribeKey', { KeyId: key.keyId }, AbortSignal.timeout(100)), { name: 'TimeoutError' });
    } finally {
      emu.faults.clear();
    }
  });
});

describe('AWS KMS emulator: asynchronous on-demand rotation', () => {
  it('reports the rotation in progress, refuses a second one, then switches material', async () => {
    const emu = await startAwsKmsEmulator({ rotationLagMs: 150 });
    try {
      const k = emu.createKey();
      const before = await call(emu, 'DescribeKey', { KeyId: k.keyId });
      assert.equal((await call(emu, 'RotateKeyOnDemand', { KeyId: k.keyId })).status, 200);
      const status = await call(emu, 'GetKeyRotationStatus', { KeyId: k.keyId });
      assert.equal(typeof status.body.OnDemandRotationStartDate, 'number');
      assertError(await call(emu, 'RotateKeyOnDemand', { KeyId: k.keyId }), 409, 'ConflictException');
      const same = await call(emu, 'DescribeKey', { KeyId: k.keyId });
      assert.deepEqual(same.body.KeyMetadata, before.body.KeyMetadata, 'still the old material while rotating');
      let changed = false;
      for (let i = 0; i < 100 && !changed; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const now = await call(emu, 'DescribeKey', { KeyId: k.keyId });
        changed = (now.body.KeyMetadata as Record<string, unknown>).CurrentKeyMaterialId !== (before.body.KeyMetadata as Record<string, unknown>).CurrentKeyMaterialId;
      }
      assert.ok(changed, 'the new material became current');
    } finally {
      await emu.close();
    }
  });
});

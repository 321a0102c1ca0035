/**
 * Wire-level tests of the GCP KMS emulator with a plain grpc-js client built from the same protos (the
 * provider's tests cover the real @google-cloud/kms SDK against it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { startControlServer } from '../control';
import { crc32c } from '@aws-crypto/crc32c';
import { startGcpKmsEmulator, type GcpKmsEmulator } from './emulator';
import { kmsServiceClient } from './protos';

type Res = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

type UnaryFn = (req: object, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall;
const method = (client: grpc.Client, name: string): UnaryFn => {
  const fn = (client as unknown as Record<string, UnaryFn | undefined>)[name];
  assert.ok(fn, `client has no method ${name}`);
  return fn.bind(client);
};

function rpc(client: grpc.Client, name: string, req: object): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(client, name)(req, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function rejectsWith(p: Promise<unknown>, code: grpc.status, details?: RegExp): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    assert.equal(err.code, code, `expected ${grpc.status[code]}, got ${grpc.status[err.code]}: ${err.details}`);
    if (details) assert.match(err.details, details);
    return err;
  }
  return assert.fail(`expected ${grpc.status[code]}`);
}

const PT = Buffer.alloc(32, 9);
const AAD = Buffer.from('tenant=a');

describe('GCP KMS emulator (grpc wire)', () => {
  let emu: GcpKmsEmulator;
  let client: grpc.Client;
  let key: string;

  before(async () => {
    emu = await startGcpKmsEmulator();
    const Client = kmsServiceClient();
    client = new Client(`127.0.0.1:${emu.port}`, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 50,
      'grpc.max_reconnect_backoff_ms': 100,
    });
    key = await emu.createKey('p', 'global', 'ring', 'k1');
  });
  after(async () => {
    client.close();
    await emu.close();
  });

  it('binds 127.0.0.1 and creates keys with an ENABLED primary version 1', async () => {
    assert.equal(emu.host, '127.0.0.1');
    assert.equal(emu.endpoint, `127.0.0.1:${emu.port}`);
    assert.equal(key, 'projects/p/locations/global/keyRings/ring/cryptoKeys/k1');
    const ck = await rpc(client, 'getCryptoKey', { name: key });
    assert.equal(ck.primary.name, `${key}/cryptoKeyVersions/1`);
    assert.equal(ck.primary.state, 'ENABLED');
    assert.equal(ck.purpose, 'ENCRYPT_DECRYPT');
    assert.ok(Number(ck.createTime.seconds) > 0);
    await assert.rejects(emu.createKey('p', 'global', 'ring', 'k1'), /already exists/);
  });

  it('encrypts with AAD, verifies request CRCs and returns checksums; decrypt reports used_primary', async () => {
    const enc = await rpc(client, 'encrypt', {
      name: key, plaintext: PT, additionalAuthenticatedData: AAD,
      plaintextCrc32c: { value: String(crc32c(PT)) }, additionalAuthenticatedDataCrc32c: { value: String(crc32c(AAD)) },
    });
    assert.equal(enc.name, `${key}/cryptoKeyVersions/1`);
    assert.equal(enc.verifiedPlaintextCrc32c, true);
    assert.equal(enc.verifiedAdditionalAuthenticatedDataCrc32c, true);
    assert.equal(Number(enc.ciphertextCrc32c.value), crc32c(enc.ciphertext));
    assert.ok(!Buffer.from(enc.ciphertext).includes(PT));
    const dec = await rpc(client, 'decrypt', { name: key, ciphertext: enc.ciphertext, additionalAuthenticatedData: AAD, ciphertextCrc32c: { value: String(crc32c(enc.ciphertext)) } });
    assert.deepEqual(dec.plaintext, PT);
    assert.equal(Number(dec.plaintextCrc32c.value), crc32c(PT));
    assert.equal(dec.usedPrimary, true);
    // Without request CRCs nothing is "verified".
    const plain = await rpc(client, 'encrypt', { name: key, plaintext: PT });
    assert.equal(plain.verifiedPlaintextCrc32c, false);
  });

  it('rejects a request whose CRC does not match, with the Cloud KMS text', async () => {
    await rejectsWith(rpc(client, 'encrypt', { name: key, plaintext: PT, plaintextCrc32c: { value: String(crc32c(PT) ^ 1) } }),
      grpc.status.INVALID_ARGUMENT, /checksum in field plaintext_crc32c did not match/);
    const enc = await rpc(client, 'encrypt', { name: key, plaintext: PT });
    await rejectsWith(rpc(client, 'decrypt', { name: key, ciphertext: enc.ciphertext, ciphertextCrc32c: { value: '1' } }),
      grpc.status.INVALID_ARGUMENT, /ciphertext_crc32c/);
  });

  it('fails wrong AAD, tampered and truncated ciphertexts with INVALID_ARGUMENT', async () => {
    const enc = await rpc(client, 'encrypt', { name: key, plaintext: PT, additionalAuthenticatedData: AAD });
    await rejectsWith(rpc(client, 'decrypt', { name: key, ciphertext: enc.ciphertext, additionalAuthenticatedData: Buffer.from('tenant=b') }),
      grpc.status.INVALID_ARGUMENT, /Decryption failed/);
    const bad = Buffer.from(enc.ciphertext);
    bad[20] = (bad[20] ?? 0) ^ 0x40;
    await rejectsWith(rpc(client, 'decrypt', { name: key, ciphertext: bad, additionalAuthenticatedData: AAD }), grpc.status.INVALID_ARGUMENT);
    await rejectsWith(rpc(client, 'decrypt', { name: key, ciphertext: bad.subarray(0, 8), additionalAuthenticatedData: AAD }), grpc.status.INVALID_ARGUMENT);
    // Decrypt takes the CryptoKey, never a version.
    await rejectsWith(rpc(client, 'decrypt', { name: `${key}/cryptoKeyVersions/1`, ciphertext: enc.ciphertext }), grpc.status.INVALID_ARGUMENT);
  });

  it('answers NOT_FOUND for missing keys and UNIMPLEMENTED for methods it does not emulate', async () => {
    await rejectsWith(rpc(client, 'encrypt', { name: `${key}-absent`, plaintext: PT }), grpc.status.NOT_FOUND);
    await rejectsWith(rpc(client, 'getCryptoKey', { name: 'projects/p/locations/global/keyRings/nope/cryptoKeys/k' }), grpc.status.NOT_FOUND);
    await rejectsWith(rpc(client, 'listKeyRings', { parent: 'projects/p/locations/global' }), grpc.status.UNIMPLEMENTED);
  });

  it('rotates: a new version becomes primary only when asked, old ciphertexts still decrypt', async () => {
    const k = await emu.createKey('p', 'global', 'ring', 'rot');
    const old = await rpc(client, 'encrypt', { name: k, plaintext: PT });
    const v2 = await rpc(client, 'createCryptoKeyVersion', { parent: k, cryptoKeyVersion: {} });
    assert.equal(v2.name, `${k}/cryptoKeyVersions/2`);
    assert.equal((await rpc(client, 'encrypt', { name: k, plaintext: PT })).name, `${k}/cryptoKeyVersions/1`);
    const ck = await rpc(client, 'updateCryptoKeyPrimaryVersion', { name: k, cryptoKeyVersionId: '2' });
    assert.equal(ck.primary.name, v2.name);
    assert.equal((await rpc(client, 'encrypt', { name: k, plaintext: PT })).name, v2.name);
    const dec = await rpc(client, 'decrypt', { name: k, ciphertext: old.ciphertext });
    assert.deepEqual(dec.plaintext, PT);
    assert.equal(dec.usedPrimary, false);
    // An explicit version name is honoured.
    assert.equal((await rpc(client, 'encrypt', { name: `${k}/cryptoKeyVersions/1`, plaintext: PT })).name, `${k}/cryptoKeyVersions/1`);
  });

  it('disables and enables versions: FAILED_PRECONDITION while disabled, and a disabled version cannot become primary', async () => {
    const k = await emu.createKey('p', 'global', 'ring', 'dis');
    const enc = await rpc(client, 'encrypt', { name: k, plaintext: PT });
    const v = await rpc(client, 'updateCryptoKeyVersion', { cryptoKeyVersion: { name: `${k}/cryptoKeyVersions/1`, state: 'DISABLED' }, updateMask: { paths: ['state'] } });
    assert.equal(v.state, 'DISABLED');
    await rejectsWith(rpc(client, 'encrypt', { name: k, plaintext: PT }), grpc.status.FAILED_PRECONDITION, /is not enabled, current state is: DISABLED/);
    await rejectsWith(rpc(client, 'decrypt', { name: k, ciphertext: enc.ciphertext }), grpc.status.FAILED_PRECONDITION);
    await rejectsWith(rpc(client, 'updateCryptoKeyPrimaryVersion', { name: k, cryptoKeyVersionId: '1' }), grpc.status.FAILED_PRECONDITION);
    await emu.enableKey(k);
    assert.deepEqual((await rpc(client, 'decrypt', { name: k, ciphertext: enc.ciphertext })).plaintext, PT);
    await emu.disableKey(k);
    assert.equal((await rpc(client, 'getCryptoKeyVersion', { name: `${k}/cryptoKeyVersions/1` })).state, 'DISABLED');
    await emu.enableKey(k);
  });

  it('serves the admin API: key rings, keys (with or without a first version), destroy and restore', async () => {
    const loc = 'projects/p/locations/us-central1';
    const ring = await rpc(client, 'createKeyRing', { parent: loc, keyRingId: 'admin', keyRing: {} });
    assert.equal(ring.name, `${loc}/keyRings/admin`);
    assert.equal((await rpc(client, 'getKeyRing', { name: ring.name })).name, ring.name);
    await rejectsWith(rpc(client, 'createKeyRing', { parent: loc, keyRingId: 'admin', keyRing: {} }), grpc.status.ALREADY_EXISTS);
    await rejectsWith(rpc(client, 'createKeyRing', { parent: loc, keyRingId: 'bad id!', keyRing: {} }), grpc.status.INVALID_ARGUMENT);

    const spec = { purpose: 'ENCRYPT_DECRYPT', versionTemplate: { algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' } };
    const k = await rpc(client, 'createCryptoKey', { parent: ring.name, cryptoKeyId: 'k', cryptoKey: spec });
    assert.equal(k.primary.name, `${ring.name}/cryptoKeys/k/cryptoKeyVersions/1`);
    await rejectsWith(rpc(client, 'createCryptoKey', { parent: ring.name, cryptoKeyId: 'k', cryptoKey: spec }), grpc.status.ALREADY_EXISTS);
    await rejectsWith(rpc(client, 'createCryptoKey', { parent: ring.name, cryptoKeyId: 'sig', cryptoKey: { purpose: 'ASYMMETRIC_SIGN' } }), grpc.status.INVALID_ARGUMENT);
    await rejectsWith(rpc(client, 'createCryptoKey', { parent: `${loc}/keyRings/none`, cryptoKeyId: 'k', cryptoKey: spec }), grpc.status.NOT_FOUND);

    const empty = await rpc(client, 'createCryptoKey', { parent: ring.name, cryptoKeyId: 'empty', cryptoKey: spec, skipInitialVersionCreation: true });
    assert.equal(empty.primary, null);
    await rejectsWith(rpc(client, 'encrypt', { name: empty.name, plaintext: PT }), grpc.status.FAILED_PRECONDITION, /no primary/);

    const v1 = `${k.name}/cryptoKeyVersions/1`;
    const enc = await rpc(client, 'encrypt', { name: k.name, plaintext: PT });
    assert.equal((await rpc(client, 'destroyCryptoKeyVersion', { name: v1 })).state, 'DESTROY_SCHEDULED');
    await rejectsWith(rpc(client, 'decrypt', { name: k.name, ciphertext: enc.ciphertext }), grpc.status.FAILED_PRECONDITION, /DESTROY_SCHEDULED/);
    assert.equal((await rpc(client, 'restoreCryptoKeyVersion', { name: v1 })).state, 'DISABLED');
    await rejectsWith(rpc(client, 'restoreCryptoKeyVersion', { name: v1 }), grpc.status.FAILED_PRECONDITION);
    await rpc(client, 'updateCryptoKeyVersion', { cryptoKeyVersion: { name: v1, state: 'ENABLED' }, updateMask: { paths: ['state'] } });
    assert.deepEqual((await rpc(client, 'decrypt', { name: k.name, ciphertext: enc.ciphertext })).plaintext, PT);
    await rejectsWith(rpc(client, 'updateCryptoKeyVersion', { cryptoKeyVersion: { name: v1, state: 'DESTROYED' }, updateMask: { paths: ['state'] } }), grpc.status.INVALID_ARGUMENT);
  });

  it('creates versions PENDING_GENERATION when generationDelayMs is set', async () => {
    const slow = await startGcpKmsEmulator({ generationDelayMs: 150 });
    const Client = kmsServiceClient();
    const c = new Client(`127.0.0.1:${slow.port}`, grpc.credentials.createInsecure());
    try {
      const k = await slow.createKey('p', 'global', 'ring', 'hsm');
      const v2 = await rpc(c, 'createCryptoKeyVersion', { parent: k, cryptoKeyVersion: {} });
      assert.equal(v2.state, 'PENDING_GENERATION');
      await rejectsWith(rpc(c, 'updateCryptoKeyPrimaryVersion', { name: k, cryptoKeyVersionId: '2' }), grpc.status.FAILED_PRECONDITION);
      let state = v2.state as string;
      while (state === 'PENDING_GENERATION') {
        await new Promise((r) => setTimeout(r, 50));
        state = (await rpc(c, 'getCryptoKeyVersion', { name: v2.name })).state;
      }
      assert.equal(state, 'ENABLED');
    } finally {
      c.close();
      await slow.close();
    }
  });

  describe('faults', () => {
    it('throttle → RESOURCE_EXHAUSTED with ErrorInfo and RetryInfo in grpc-status-details-bin', async () => {
      emu.faults.add({ kind: 'throttle', key: 'k1', count: 1 });
      const err = await rejectsWith(rpc(client, 'encrypt', { name: key, plaintext: PT }), grpc.status.RESOURCE_EXHAUSTED, /Quota exceeded/);
      const bin = err.metadata.get('grpc-status-details-bin')[0] as Buffer;
      assert.ok(Buffer.isBuffer(bin));
      assert.ok(bin.includes(Buffer.from('type.googleapis.com/google.rpc.RetryInfo')));
      assert.ok(bin.includes(Buffer.from('RATE_LIMIT_EXCEEDED')));
      await rpc(client, 'encrypt', { name: key, plaintext: PT }); // count: 1 → gone
    });

    it('a rule for one key leaves other keys alone', async () => {
      const other = await emu.createKey('p', 'global', 'ring', 'other');
      emu.faults.add({ kind: 'error', key: 'cryptoKeys/other' });
      try {
        await rejectsWith(rpc(client, 'encrypt', { name: other, plaintext: PT }), grpc.status.UNAVAILABLE);
        await rpc(client, 'encrypt', { name: key, plaintext: PT });
        emu.faults.clear();
        // A per-key outage cannot reset a shared connection: it answers UNAVAILABLE for that key only.
        emu.faults.add({ kind: 'outage', key: 'cryptoKeys/other' });
        assert.equal(emu.faults.globalOutage, false);
        await rejectsWith(rpc(client, 'encrypt', { name: other, plaintext: PT }), grpc.status.UNAVAILABLE, /outage/);
        await rpc(client, 'encrypt', { name: key, plaintext: PT });
      } finally {
        emu.faults.clear();
      }
    });

    it('corrupt → response checksums that do not match the data', async () => {
      const enc = await rpc(client, 'encrypt', { name: key, plaintext: PT });
      emu.faults.add({ kind: 'corrupt', count: 2 });
      const bad = await rpc(client, 'encrypt', { name: key, plaintext: PT });
      assert.notEqual(Number(bad.ciphertextCrc32c.value), crc32c(bad.ciphertext));
      const dec = await rpc(client, 'decrypt', { name: key, ciphertext: enc.ciphertext });
      assert.deepEqual(dec.plaintext, PT);
      assert.notEqual(Number(dec.plaintextCrc32c.value), crc32c(PT));
    });

    it('injectStatus answers one matching call with any status', async () => {
      emu.injectStatus({ code: grpc.status.PERMISSION_DENIED, details: "Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied", operation: 'Encrypt' });
      await rpc(client, 'getCryptoKey', { name: key }); // other operation: untouched
      await rejectsWith(rpc(client, 'encrypt', { name: key, plaintext: PT }), grpc.status.PERMISSION_DENIED, /useToEncrypt/);
      await rpc(client, 'encrypt', { name: key, plaintext: PT });
    });

    it('latency: a call the client cancels is counted and abandoned', async () => {
      emu.faults.add({ kind: 'latency', ms: 60_000 });
      try {
        const before = emu.stats.cancelled;
        const done = new Promise<grpc.ServiceError | null>((resolve) => {
          const call = method(client, 'encrypt')({ name: key, plaintext: PT }, (err) => resolve(err));
          setTimeout(() => call.cancel(), 50);
        });
        assert.equal((await done)?.code, grpc.status.CANCELLED);
        // Would hang (and time the test out) if the emulator never noticed the cancellation.
        while (emu.stats.cancelled === before) await new Promise((r) => setTimeout(r, 10));
        assert.equal(emu.stats.cancelled, before + 1);
      } finally {
        emu.faults.clear();
      }
    });

    it('a global outage through the control endpoint resets connections; clearing it restores service', async () => {
      const control = await startControlServer({ gcp: emu });
      try {
        await rpc(client, 'getCryptoKey', { name: key }); // a live connection to drop
        const res = await fetch(`http://127.0.0.1:${control.port}/faults/gcp`, { method: 'POST', body: JSON.stringify({ kind: 'outage' }) });
        assert.equal(res.status, 200);
        await rejectsWith(rpc(client, 'getCryptoKey', { name: key }), grpc.status.UNAVAILABLE);
        await fetch(`http://127.0.0.1:${control.port}/faults/gcp`, { method: 'DELETE' });
        let ok = false;
        while (!ok) {
          ok = await rpc(client, 'getCryptoKey', { name: key }).then(() => true, () => false);
          if (!ok) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(emu.faults.callCount('GetCryptoKey') > 0);
      } finally {
        emu.faults.clear();
        await control.close();
      }
    });
  });
});

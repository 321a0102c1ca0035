/**
 * Integrity rules with a plain-object client: answers the emulator never gives (unverified checksums,
 * a version of another key, a stale version after rotation).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKekError, type WrapContext } from '@kekbroker/core';
import type { EncryptResponse, GcpKmsClient, KmsCryptoKey } from './client';
import { crc32c } from '@aws-crypto/crc32c';
import { checkDecrypt, checkEncrypt } from './integrity';
import { GcpKmsProvider } from './provider';
import { IntegrityError } from './transport-errors';

const KEY = 'projects/p/locations/l/keyRings/r/cryptoKeys/k';
const CTX: WrapContext = { tenant: 't', keyring: 'k', envelopeVersion: 1 };
const CT = Buffer.from('ciphertext bytes');
const good = (v = 1): EncryptResponse => ({
  name: `${KEY}/cryptoKeyVersions/${v}`, ciphertext: CT, ciphertextCrc32c: { value: String(crc32c(CT)) },
  verifiedPlaintextCrc32c: true, verifiedAdditionalAuthenticatedDataCrc32c: true,
});
const KEY_FACTS: KmsCryptoKey = { name: KEY, purpose: 'ENCRYPT_DECRYPT', createTime: { seconds: '1795374658', nanos: 5 }, primary: { name: `${KEY}/cryptoKeyVersions/3`, state: 'ENABLED' } };

function fakeClient(encrypt: () => EncryptResponse): GcpKmsClient & { encrypts: number } {
  const c = {
    encrypts: 0,
    async encrypt() {
      c.encrypts++;
      return encrypt();
    },
    decrypt: async () => ({}),
    getCryptoKey: async () => KEY_FACTS,
    getCryptoKeyVersion: async () => ({}),
    createCryptoKeyVersion: async () => ({}),
    updateCryptoKeyPrimaryVersion: async () => KEY_FACTS,
    close: async () => undefined,
  };
  return c;
}

describe('response integrity', () => {
  it('checkEncrypt requires both verified flags and a matching ciphertext checksum', () => {
    assert.equal(checkEncrypt(good(), KEY, 'x').versionName, `${KEY}/cryptoKeyVersions/1`);
    assert.throws(() => checkEncrypt({ ...good(), verifiedPlaintextCrc32c: false }, KEY, 'x'), IntegrityError);
    assert.throws(() => checkEncrypt({ ...good(), verifiedAdditionalAuthenticatedDataCrc32c: null }, KEY, 'x'), IntegrityError);
    assert.throws(() => checkEncrypt({ ...good(), ciphertextCrc32c: { value: '1' } }, KEY, 'x'), IntegrityError);
    assert.throws(() => checkEncrypt({ ...good(), ciphertextCrc32c: null }, KEY, 'x'), IntegrityError);
    assert.throws(() => checkEncrypt({ ...good(), name: 'projects/p/locations/l/keyRings/r/cryptoKeys/other/cryptoKeyVersions/1' }, KEY, 'x'),
      (e: unknown) => isKekError(e) && e.code === 'internal');
  });

  it('checkDecrypt zeroes a plaintext it rejects', () => {
    const pt = Buffer.alloc(32, 7);
    assert.deepEqual(checkDecrypt({ plaintext: pt, plaintextCrc32c: { value: crc32c(pt) } }), Buffer.alloc(32, 7));
    const bad = Buffer.alloc(32, 7);
    assert.throws(() => checkDecrypt({ plaintext: bad, plaintextCrc32c: { value: 0 } }), IntegrityError);
    assert.deepEqual(bad, Buffer.alloc(32), 'the rejected plaintext was zeroed in place');
  });

  it('a server that never confirms our checksums makes wrap fail as unavailable after the attempts', async () => {
    const client = fakeClient(() => ({ ...good(3), verifiedPlaintextCrc32c: false }));
    const p = new GcpKmsProvider({ id: 'g', keyName: KEY, client, retryBaseDelayMs: 1 });
    const e = await p.wrap(Buffer.alloc(32, 1), CTX, AbortSignal.timeout(5000)).catch((x: unknown) => x);
    assert.ok(isKekError(e) && e.code === 'unavailable', String(e));
    assert.equal(client.encrypts, 3);
  });

  it('an answer for another key is internal and not retried', async () => {
    const client = fakeClient(() => ({ ...good(), name: 'projects/p/locations/l/keyRings/r/cryptoKeys/evil/cryptoKeyVersions/1' }));
    const p = new GcpKmsProvider({ id: 'g', keyName: KEY, client, retryBaseDelayMs: 1 });
    const e = await p.wrap(Buffer.alloc(32, 1), CTX, AbortSignal.timeout(5000)).catch((x: unknown) => x);
    assert.ok(isKekError(e) && e.code === 'internal', String(e));
    assert.equal(client.encrypts, 1);
  });

  it('wrap names the cached primary version, and an answer for another version is internal', async () => {
    const names: string[] = [];
    const client = fakeClient(() => good(2)); // asked for version 3 (the primary in KEY_FACTS), answers with 2
    const spy = client.encrypt.bind(client);
    client.encrypt = async (req, call) => {
      names.push(req.name);
      return spy(req, call);
    };
    const p = new GcpKmsProvider({ id: 'g', keyName: KEY, client });
    const e = await p.wrap(Buffer.alloc(32, 1), CTX, AbortSignal.timeout(5000)).catch((x: unknown) => x);
    assert.ok(isKekError(e) && e.code === 'internal', String(e));
    assert.deepEqual(names, [`${KEY}/cryptoKeyVersions/3`]);
    const ok = new GcpKmsProvider({ id: 'g', keyName: KEY, client: fakeClient(() => good(3)) });
    const w = await ok.wrap(Buffer.alloc(32, 1), CTX, AbortSignal.timeout(5000));
    assert.equal(w.keyVersionRef, `${KEY}/cryptoKeyVersions/3@2026-11-22T19:10:58.000000005Z`);
  });
});

/**
 * Provider logic against a plain-object vault (client.ts): version pinning, caches, refresh, binding,
 * size rules. The real SDK and wire are covered by sdk-client.test.ts and the conformance suite.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { aadDigest, isKekError, type ErrorCode, type WrapContext } from '@kekbroker/core';
import type { KeyVaultClient, KeyVersionCrypto, VaultKey } from './client';
import { AzureKeyVaultProvider, type AzureKeyVaultProviderOptions } from './provider';

const CTX: WrapContext = { tenant: 'tenant-a', keyring: 'prod', envelopeVersion: 1 };
const VAULT = 'https://contoso.vault.azure.net';
const sig = (): AbortSignal => AbortSignal.timeout(5000);

/** An in-memory vault: wrapped = version (16 bytes) || inner XOR 0x5a, so a blob names its version. */
class FakeVault implements KeyVaultClient {
  readonly versions = new Map<string, VaultKey[]>();
  readonly calls = { getKey: 0, getVersion: 0, rotate: 0, wrap: 0, unwrap: 0, cryptoFor: 0 };
  lastInner: Buffer | undefined;
  /** Called before answering getKey; may throw or wait. */
  onGet: ((name: string, version: string | undefined) => Promise<void>) | undefined;
  /** Overrides the kid a wrap answers with. */
  wrapKid: string | undefined;

  add(name: string, over: Partial<VaultKey> = {}): VaultKey {
    const version = randomBytes(16).toString('hex');
    const k: VaultKey = { id: `${VAULT}/keys/${name}/${version}`, name, version, keyType: 'RSA', enabled: true, keyOps: ['wrapKey', 'unwrapKey'], ...over };
    this.versions.set(name, [...(this.versions.get(name) ?? []), k]);
    return k;
  }

  set(name: string, patch: Partial<VaultKey>): void {
    this.versions.set(name, (this.versions.get(name) ?? []).map((k) => ({ ...k, ...patch })));
  }

  async getKey(name: string, version: string | undefined): Promise<VaultKey> {
    if (version) this.calls.getVersion++;
    else this.calls.getKey++;
    await this.onGet?.(name, version);
    const list = this.versions.get(name) ?? [];
    const k = version ? list.find((v) => v.version === version) : list[list.length - 1];
    if (!k) throw Object.assign(new Error('not found'), { name: 'RestError', statusCode: 404, code: 'KeyNotFound' });
    return k;
  }

  async rotateKey(name: string): Promise<VaultKey> {
    this.calls.rotate++;
    const latest = await this.getKey(name, undefined);
    this.calls.getKey--;
    return this.add(name, { keyType: latest.keyType, ...(latest.modulusBytes ? { modulusBytes: latest.modulusBytes } : {}) });
  }

  cryptoFor(key: VaultKey): KeyVersionCrypto {
    this.calls.cryptoFor++;
    const tag = Buffer.from(key.version, 'hex');
    return {
      wrapKey: async (_alg, inner) => {
        this.calls.wrap++;
        this.lastInner = Buffer.from(inner);
        return { result: Buffer.concat([tag, Buffer.from(inner).map((b) => b ^ 0x5a)]), keyId: this.wrapKid ?? key.id };
      },
      unwrapKey: async (_alg, wrapped) => {
        this.calls.unwrap++;
        if (!Buffer.from(wrapped).subarray(0, 16).equals(tag)) throw Object.assign(new Error('bad'), { name: 'RestError', statusCode: 400, code: 'BadParameter' });
        return { result: Buffer.from(wrapped).subarray(16).map((b) => b ^ 0x5a) };
      },
    };
  }
}

function open(fake: FakeVault, over: Partial<AzureKeyVaultProviderOptions> = {}): AzureKeyVaultProvider {
  return new AzureKeyVaultProvider({ id: 'azure', vaultUrl: VAULT, keyName: 'kek', client: fake, refreshIntervalMs: 0, ...over });
}

async function rejects(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isKekError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

describe('AzureKeyVaultProvider', () => {
  it('wraps plaintext || SHA-256(aad) under the pinned latest version and names it in the ref', async () => {
    const fake = new FakeVault();
    const k = fake.add('kek');
    const p = open(fake);
    const seed = randomBytes(32);
    const w = await p.wrap(seed, CTX, sig());
    assert.equal(w.keyVersionRef, `azure:contoso.vault.azure.net/keys/kek/${k.version}`);
    assert.deepEqual(fake.lastInner, Buffer.concat([seed, aadDigest(CTX)]));
    assert.deepEqual(await p.unwrap(w, CTX, sig()), seed);
    await rejects(p.unwrap(w, { ...CTX, tenant: 'tenant-b' }, sig()), 'corrupt', /bound to another tenant/);
    await rejects(p.unwrap(w, { ...CTX, envelopeVersion: 2 }, sig()), 'corrupt');
  });

  it('the ref depends on the vault host only: other URL forms of the same vault give the same ref', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    const a = await open(fake).describe(sig());
    const b = await open(fake, { vaultUrl: 'https://CONTOSO.vault.azure.net:443/' }).describe(sig());
    assert.equal(a.currentVersionRef, b.currentVersionRef);
    assert.equal(a.details['vaultUrl'], VAULT);
  });

  it('describe() is cached: one vault read for many calls', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    const p = open(fake);
    const refs = await Promise.all(Array.from({ length: 10 }, () => p.describe(sig())));
    assert.equal(new Set(refs.map((d) => d.currentVersionRef)).size, 1);
    await p.wrap(Buffer.alloc(32, 1), CTX, sig());
    assert.equal(fake.calls.getKey, 1);
    assert.equal(fake.calls.cryptoFor, 1);
  });

  it('rotate() moves wraps to the new version; old blobs unwrap with the old version\'s client', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    const p = open(fake);
    const seed = randomBytes(32);
    const old = await p.wrap(seed, CTX, sig());
    const d = await p.rotate(sig());
    assert.notEqual(d.currentVersionRef, old.keyVersionRef);
    const neu = await p.wrap(seed, CTX, sig());
    assert.equal(neu.keyVersionRef, d.currentVersionRef);
    const reads = fake.calls.getKey + fake.calls.getVersion;
    assert.deepEqual(await p.unwrap(old, CTX, sig()), seed);
    assert.deepEqual(await p.unwrap(neu, CTX, sig()), seed);
    assert.equal(fake.calls.getKey + fake.calls.getVersion, reads, 'both versions already have clients');
  });

  it('a cold unwrap reads its version once, even for concurrent callers, and keeps the client', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    const seed = randomBytes(32);
    const old = await open(fake).wrap(seed, CTX, sig());
    fake.add('kek'); // rotated elsewhere
    const p = open(fake);
    const outs = await Promise.all(Array.from({ length: 5 }, () => p.unwrap(old, CTX, sig())));
    for (const o of outs) assert.deepEqual(o, seed);
    await p.unwrap(old, CTX, sig());
    assert.equal(fake.calls.getVersion, 1);
  });

  it('a failed version read is not cached', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    const seed = randomBytes(32);
    const old = await open(fake).wrap(seed, CTX, sig());
    fake.add('kek');
    const p = open(fake);
    let fail = true;
    fake.onGet = async () => {
      if (fail) throw Object.assign(new Error('503'), { name: 'RestError', statusCode: 503, code: 'ServiceUnavailable' });
    };
    await rejects(p.unwrap(old, CTX, sig()), 'unavailable');
    fail = false;
    assert.deepEqual(await p.unwrap(old, CTX, sig()), seed);
  });

  it('a caller that gives up does not spoil a shared key read for the others', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    fake.onGet = () => gate;
    const p = open(fake);
    const ac = new AbortController();
    const quitter = p.describe(ac.signal);
    const patient = p.describe(sig());
    ac.abort();
    await rejects(quitter, 'timeout');
    release();
    assert.match((await patient).currentVersionRef, /^azure:contoso\.vault\.azure\.net\/keys\/kek\/[0-9a-f]{32}$/);
    assert.equal(fake.calls.getKey, 1);
  });

  it('refreshes the latest version in the background when stale (rotation made elsewhere)', async () => {
    const fake = new FakeVault();
    const v1 = fake.add('kek');
    const p = open(fake, { refreshIntervalMs: 1 });
    assert.match((await p.describe(sig())).currentVersionRef, new RegExp(v1.version));
    const v2 = fake.add('kek');
    // Stale after 1 ms: the next describe serves the cached version and starts a refresh.
    for (let i = 0; i < 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      if ((await p.describe(sig())).currentVersionRef.endsWith(v2.version)) break;
    }
    assert.ok((await p.describe(sig())).currentVersionRef.endsWith(v2.version), 'picked up the new version');
    const w = await p.wrap(Buffer.alloc(32, 2), CTX, sig());
    assert.ok(w.keyVersionRef.endsWith(v2.version));
  });

  it('refuses to wrap under a key seen disabled, after re-reading it; wraps again once enabled', async () => {
    const fake = new FakeVault();
    fake.add('kek', { enabled: false });
    const p = open(fake);
    await rejects(p.wrap(Buffer.alloc(32), CTX, sig()), 'permission-denied', /is disabled: enable it/);
    assert.equal(fake.calls.wrap, 0, 'refused before the vault (which may accept an RSA wrap under a disabled key)');
    fake.set('kek', { enabled: true });
    await p.wrap(Buffer.alloc(32), CTX, sig());
    assert.equal(fake.calls.wrap, 1);
  });

  it('refs of another key or vault are not-found; malformed refs are corrupt', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    const p = open(fake);
    const w = await p.wrap(Buffer.alloc(32), CTX, sig());
    await rejects(p.unwrap({ ...w, keyVersionRef: w.keyVersionRef.replace('/keys/kek/', '/keys/other/') }, CTX, sig()), 'not-found');
    await rejects(p.unwrap({ ...w, keyVersionRef: w.keyVersionRef.replace('contoso', 'fabrikam') }, CTX, sig()), 'not-found');
    await rejects(p.unwrap({ ...w, keyVersionRef: 'local:0011223344556677:v1' }, CTX, sig()), 'corrupt');
    await rejects(p.unwrap({ ...w, keyVersionRef: `${w.keyVersionRef}/../x` }, CTX, sig()), 'corrupt');
  });

  it('enforces what the algorithm can wrap, before calling the vault', async () => {
    const fake = new FakeVault();
    fake.add('kek', { modulusBytes: 256 });
    fake.add('hsm', { keyType: 'oct-HSM' });
    const rsa = open(fake);
    await rsa.wrap(Buffer.alloc(158, 1), CTX, sig());
    await rejects(rsa.wrap(Buffer.alloc(159, 1), CTX, sig()), 'invalid-input', /at most 158 bytes/);
    const hsm = open(fake, { keyName: 'hsm' });
    await hsm.wrap(Buffer.alloc(40, 1), CTX, sig());
    await rejects(hsm.wrap(Buffer.alloc(33, 1), CTX, sig()), 'invalid-input', /multiple of 8/);
    await rejects(hsm.wrap(Buffer.alloc(0), CTX, sig()), 'invalid-input');
    assert.equal(fake.calls.wrap, 2);
  });

  it('refuses wrapped lengths the algorithm cannot produce without calling the vault', async () => {
    const fake = new FakeVault();
    fake.add('kek', { modulusBytes: 256 });
    fake.add('hsm', { keyType: 'oct-HSM' });
    const rsaW = await open(fake).wrap(Buffer.alloc(32), CTX, sig());
    const hsmW = await open(fake, { keyName: 'hsm' }).wrap(Buffer.alloc(32), CTX, sig());
    await rejects(open(fake).unwrap({ ...rsaW, wrapped: Buffer.alloc(255) }, CTX, sig()), 'corrupt', /length \(255\)/);
    await rejects(open(fake, { keyName: 'hsm' }).unwrap({ ...hsmW, wrapped: Buffer.alloc(44) }, CTX, sig()), 'corrupt');
    await rejects(open(fake, { keyName: 'hsm' }).unwrap({ ...hsmW, wrapped: Buffer.alloc(40) }, CTX, sig()), 'corrupt');
    assert.equal(fake.calls.unwrap, 0);
  });

  it('a wrap answered by another key version is an internal error, not a wrong ref', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    fake.wrapKid = `${VAULT}/keys/kek/${'0'.repeat(32)}`;
    await rejects(open(fake).wrap(Buffer.alloc(32), CTX, sig()), 'internal', /not the pinned version/);
  });

  it('an EC key is refused with the types that work', async () => {
    const fake = new FakeVault();
    fake.add('kek', { keyType: 'EC' });
    await rejects(open(fake).describe(sig()), 'internal', /RSA \(RSA-OAEP-256\) or Managed HSM oct \(A256KW\)/);
  });

  it('probe() reads the key afresh and checks enabled, key_ops and validity', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    const p = open(fake);
    await p.probe(sig());
    await p.probe(sig());
    assert.equal(fake.calls.getKey, 2, 'probe never answers from the cache');
    assert.equal(fake.calls.wrap + fake.calls.unwrap, 0, 'probe does no crypto');
    fake.set('kek', { enabled: false });
    await rejects(p.probe(sig()), 'permission-denied', /disabled/);
    fake.set('kek', { enabled: true, keyOps: ['wrapKey'] });
    await rejects(p.probe(sig()), 'permission-denied', /does not permit unwrapKey/);
    fake.set('kek', { keyOps: ['wrapKey', 'unwrapKey'], expiresOn: new Date(Date.now() - 1000) });
    await rejects(p.probe(sig()), 'permission-denied', /validity period/);
    fake.set('kek', { expiresOn: undefined });
    fake.versions.delete('kek');
    await rejects(p.probe(sig()), 'not-found');
  });

  it('close() makes later calls fail as unavailable', async () => {
    const fake = new FakeVault();
    fake.add('kek');
    const p = open(fake);
    await p.describe(sig());
    await p.close();
    await rejects(p.wrap(Buffer.alloc(32), CTX, sig()), 'unavailable', /closed/);
  });

  it('validates its options', () => {
    const fake = new FakeVault();
    assert.throws(() => open(fake, { vaultUrl: 'http://contoso.vault.azure.net' }), { code: 'invalid-input' });
    assert.throws(() => open(fake, { vaultUrl: 'https://contoso.vault.azure.net/keys/kek' }), { code: 'invalid-input' });
    assert.throws(() => open(fake, { keyName: 'kek/1' }), { code: 'invalid-input' });
    assert.throws(() => open(fake, { id: 'Azure Prod' }), { code: 'invalid-input' });
  });
});

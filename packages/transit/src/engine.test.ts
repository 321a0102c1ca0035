/**
 * The transit engine over a real keyring of the real local provider: data keys are wrapped once and reused,
 * limits retire them, every ciphertext opens from its own envelope after every cache is gone, and the
 * version prefix, tenant, key name, context and associated data are all bound.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { DefaultKeyCache, L1Cache, type KeyCache } from '@kekbroker/cache';
import { Keyring } from '@kekbroker/keyring';
import { LocalProvider } from '@kekbroker/provider-local';
import { tempDir } from '@kekbroker/testkit';
import { parseCiphertext } from './ciphertext';
import { DataKeyCache, DEFAULT_LIMITS } from './data-keys';
import { TransitEngine, TransitError, type TransitKey } from './engine';
import { PolicyStore } from './policy';

const sig = (): AbortSignal => AbortSignal.timeout(10_000);

async function setup(limits = DEFAULT_LIMITS, policyFile?: string) {
  const dir = await tempDir();
  const local = await LocalProvider.open({ id: 'local', keystore: path.join(dir, 'ks.json') });
  let calls = 0;
  const cache = () => new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 1000, maxBytes: 1 << 20, ttlMs: 60_000 }), maxStaleMs: 0 });
  const mk = (c: KeyCache) => new Keyring({ name: 'ring', providers: [local], cache: c, onProviderCall: (e) => { if (e.op !== 'verify') calls++; } }); // a wrap's verification unwrap is part of the wrap
  const keyring = mk(cache());
  await keyring.refresh(sig());
  const keys = new Map<string, TransitKey>([
    ['app', { name: 'app', keyring, versionProvider: 'local', derived: false }],
    ['app2', { name: 'app2', keyring, versionProvider: 'local', derived: false }],
    ['drv', { name: 'drv', keyring, versionProvider: 'local', derived: true }],
  ]);
  const dataKeys = new DataKeyCache(limits);
  const policy = new PolicyStore(new Map(), policyFile ?? path.join(dir, 'policy.json'));
  const engine = new TransitEngine(keys, policy, dataKeys, 1024 * 1024);
  return { engine, keys, keyring, dataKeys, dir, calls: () => calls, freshEngine: async () => {
    // A new replica: new keyring (cold L1), new data-key cache; same KMS (keystore file).
    const k2 = mk(cache());
    await k2.refresh(sig());
    const keys2 = new Map([...keys].map(([n, k]) => [n, { ...k, keyring: k2 }] as const));
    return { engine: new TransitEngine(keys2, policy, new DataKeyCache(limits), 1024 * 1024), keys: keys2 };
  } };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const key = (m: Map<string, TransitKey>, n: string): TransitKey => m.get(n) as TransitKey;

async function rejects(p: Promise<unknown>, status: number, msg: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof TransitError && e.status === status && msg.test(e.message));
}

describe('transit engine', () => {
  it('wraps one data key for 1000 encrypts, and every ciphertext decrypts on a cold replica', async () => {
    const s = await setup();
    const cts: Array<[string, string]> = [];
    for (let i = 0; i < 1000; i++) {
      const pt = randomBytes(64).toString('base64');
      cts.push([pt, (await s.engine.encrypt(key(s.keys, 'app'), 'tenant-a', { plaintext: pt }, sig())).ciphertext]);
    }
    assert.equal(s.dataKeys.created, 1);
    assert.equal(s.calls(), 1, 'one provider wrap for 1000 encrypts');
    const cold = await s.freshEngine();
    for (const [pt, ct] of cts.slice(0, 50)) assert.equal((await cold.engine.decrypt(key(cold.keys, 'app'), 'tenant-a', { ciphertext: ct }, sig())).plaintext, pt);
  });

  it('concurrent first encrypts share one wrap', async () => {
    const s = await setup();
    await Promise.all(Array.from({ length: 50 }, () => s.engine.encrypt(key(s.keys, 'app'), 't', { plaintext: b64('x') }, sig())));
    assert.equal(s.dataKeys.created, 1);
  });

  it('retires a data key at its message and byte limits', async () => {
    const s = await setup({ ...DEFAULT_LIMITS, maxMessages: 10, maxBytes: 1000 });
    for (let i = 0; i < 25; i++) await s.engine.encrypt(key(s.keys, 'app'), 't', { plaintext: b64('y') }, sig());
    assert.equal(s.dataKeys.created, 3);
    await s.engine.encrypt(key(s.keys, 'app'), 't', { plaintext: randomBytes(999).toString('base64') }, sig());
    assert.equal(s.dataKeys.created, 4, 'a message that would pass maxBytes gets a new key');
  });

  it('binds tenant, key name, version prefix, context and associated data', async () => {
    const s = await setup();
    const app = key(s.keys, 'app');
    const { ciphertext } = await s.engine.encrypt(app, 'tenant-a', { plaintext: b64('secret'), associated_data: b64('row-1') }, sig());
    await rejects(s.engine.decrypt(app, 'tenant-b', { ciphertext, associated_data: b64('row-1') }, sig()), 400, /failed authentication|message authentication failed/);
    await rejects(s.engine.decrypt(key(s.keys, 'app2'), 'tenant-a', { ciphertext, associated_data: b64('row-1') }, sig()), 400, /message authentication failed/);
    await rejects(s.engine.decrypt(app, 'tenant-a', { ciphertext, associated_data: b64('row-2') }, sig()), 400, /message authentication failed/);
    await s.engine.rotate(app, sig());
    // Relabel a v1 ciphertext as v2 (to dodge a min_decryption_version of 2): the AAD refuses it.
    await rejects(s.engine.decrypt(app, 'tenant-a', { ciphertext: ciphertext.replace('vault:v1:', 'vault:v2:'), associated_data: b64('row-1') }, sig()), 400, /message authentication failed/);
    const drv = key(s.keys, 'drv');
    await rejects(s.engine.encrypt(drv, 't', { plaintext: b64('p') }, sig()), 400, /missing 'context'/);
    const d = await s.engine.encrypt(drv, 't', { plaintext: b64('p'), context: b64('user-1') }, sig());
    await rejects(s.engine.decrypt(drv, 't', { ciphertext: d.ciphertext, context: b64('user-2') }, sig()), 400, /message authentication failed/);
    assert.equal((await s.engine.decrypt(drv, 't', { ciphertext: d.ciphertext, context: b64('user-1') }, sig())).plaintext, b64('p'));
  });

  it('rotation moves versions up by one; min_decryption_version refuses old ones; rewrap moves them', async () => {
    const s = await setup();
    const app = key(s.keys, 'app');
    const v1 = await s.engine.encrypt(app, 't', { plaintext: b64('old') }, sig());
    assert.equal(v1.key_version, 1);
    await s.engine.rotate(app, sig());
    const v2 = await s.engine.encrypt(app, 't', { plaintext: b64('new') }, sig());
    assert.equal(v2.key_version, 2);
    assert.equal(parseCiphertext(v2.ciphertext).version, 2);
    const moved = await s.engine.rewrap(app, 't', { ciphertext: v1.ciphertext }, sig());
    assert.equal(moved.key_version, 2);
    await s.engine.configure(app, { min_decryption_version: 2 });
    await rejects(s.engine.decrypt(app, 't', { ciphertext: v1.ciphertext }, sig()), 400, /disallowed by policy \(too old\)/);
    assert.equal((await s.engine.decrypt(app, 't', { ciphertext: moved.ciphertext }, sig())).plaintext, b64('old'));
    await rejects(s.engine.decrypt(app, 't', { ciphertext: v2.ciphertext.replace('vault:v2:', 'vault:v9:') }, sig()), 400, /version is too new/);
    // The policy survives a restart: a new engine over the same policy file and keystore.
    const cold = await s.freshEngine();
    await rejects(cold.engine.decrypt(key(cold.keys, 'app'), 't', { ciphertext: v1.ciphertext }, sig()), 400, /too old/);
  });

  it('a replica that has not seen a rotation yet re-reads versions instead of calling v(N+1) too new', async () => {
    const s = await setup();
    // Replica B: its own provider instance on the same keystore, its own keyring, described before the rotation.
    const localB = await LocalProvider.open({ id: 'local', keystore: path.join(s.dir, 'ks.json') });
    const ringB = new Keyring({ name: 'ring', providers: [localB], cache: new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 10, maxBytes: 1 << 20, ttlMs: 60_000 }), maxStaleMs: 0 }) });
    await ringB.refresh(sig());
    const appB: TransitKey = { name: 'app', keyring: ringB, versionProvider: 'local', derived: false };
    const engineB = new TransitEngine(new Map([['app', appB]]), new PolicyStore(new Map(), undefined), new DataKeyCache(), 1024);
    await s.engine.rotate(key(s.keys, 'app'), sig());
    const v2 = await s.engine.encrypt(key(s.keys, 'app'), 't', { plaintext: b64('fresh') }, sig());
    assert.equal(v2.key_version, 2);
    assert.equal((await engineB.decrypt(appB, 't', { ciphertext: v2.ciphertext }, sig())).plaintext, b64('fresh'));
    await rejects(engineB.decrypt(appB, 't', { ciphertext: v2.ciphertext.replace('vault:v2:', 'vault:v3:') }, sig()), 400, /version is too new/);
  });

  it('refuses bad input with Vault messages', async () => {
    const s = await setup();
    const app = key(s.keys, 'app');
    await rejects(s.engine.encrypt(app, 't', {}, sig()), 400, /^missing plaintext to encrypt$/);
    await rejects(s.engine.encrypt(app, 't', { plaintext: 'not base64!' }, sig()), 400, /failed to base64-decode plaintext/);
    await rejects(s.engine.encrypt(app, 't', { plaintext: b64('x'), key_version: 5 }, sig()), 400, /higher than the latest/);
    await rejects(s.engine.decrypt(app, 't', { ciphertext: 'abc' }, sig()), 400, /^invalid ciphertext: no prefix$/);
    await rejects(s.engine.decrypt(app, 't', { ciphertext: 'vault:v1' }, sig()), 400, /wrong number of fields/);
    await rejects(s.engine.decrypt(app, 't', { ciphertext: 'vault:vx:AAAA' }, sig()), 400, /version number could not be decoded/);
    await rejects(s.engine.decrypt(app, 't', { ciphertext: 'vault:v1:***' }, sig()), 400, /could not decode base64/);
    await rejects(s.engine.decrypt(app, 't', { ciphertext: `vault:v1:${randomBytes(90).toString('base64')}` }, sig()), 400, /invalid ciphertext/);
  });
});

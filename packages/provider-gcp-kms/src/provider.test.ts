/**
 * GcpKmsProvider through the real SDK against the emulator: the behaviours the shared conformance suite
 * does not pin down (integrity retries, cancellation reaching the server, unique refs for a re-created key,
 * caching of key facts, rotation of HSM-style versions).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isKekError, type ErrorCode, type WrapContext } from '@kekbroker/core';
import { startGcpKmsEmulator, type GcpKmsEmulator } from '@kekbroker/emulators';
import { GcpKmsProvider, type GcpKmsProviderOptions } from './provider';
import { createSdkClient } from './sdk-client';
import { parseVersionRef } from './version-ref';

const CTX: WrapContext = { tenant: 'tenant-a', keyring: 'prod', envelopeVersion: 1 };
const SEED = Buffer.alloc(32, 5);
const sig = (ms = 10_000): AbortSignal => AbortSignal.timeout(ms);

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message?: RegExp) {
  const e = await p.then(() => assert.fail(`expected ${code}`), (err: unknown) => err);
  assert.ok(isKekError(e), `expected a KekError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (message) assert.match(e.message, message);
  return e;
}

const providers: GcpKmsProvider[] = [];
function providerFor(emu: GcpKmsEmulator, keyName: string, opts: Partial<GcpKmsProviderOptions> = {}): GcpKmsProvider {
  const p = new GcpKmsProvider({ id: 'gcp-t', keyName, client: createSdkClient({ endpoint: `127.0.0.1:${emu.port}`, insecure: true }), ...opts });
  providers.push(p);
  return p;
}

describe('GcpKmsProvider against the emulator', () => {
  let emu: GcpKmsEmulator;
  let key: string;
  let p: GcpKmsProvider;

  before(async () => {
    emu = await startGcpKmsEmulator();
    key = await emu.createKey('proj', 'europe-west1', 'ring', 'kek');
    p = providerFor(emu, key);
  });
  after(async () => {
    for (const x of providers) await x.close();
    await emu.close();
  });

  describe('CRC32C integrity', () => {
    it('a corrupt ciphertext_crc32c is detected, the answer discarded and the call retried', async () => {
      await p.describe(sig());
      const before = emu.faults.callCount('Encrypt');
      emu.faults.add({ kind: 'corrupt', count: 1 });
      const w = await p.wrap(SEED, CTX, sig());
      assert.equal(emu.faults.callCount('Encrypt') - before, 2, 'one discarded answer, one good one');
      assert.deepEqual(await p.unwrap(w, CTX, sig()), SEED);
    });

    it('a corrupt plaintext_crc32c on Decrypt is detected and retried', async () => {
      const w = await p.wrap(SEED, CTX, sig());
      const before = emu.faults.callCount('Decrypt');
      emu.faults.add({ kind: 'corrupt', count: 1 });
      assert.deepEqual(await p.unwrap(w, CTX, sig()), SEED);
      assert.equal(emu.faults.callCount('Decrypt') - before, 2);
    });

    it('damage on every answer ends as unavailable after maxAttempts, and counts against the breaker', async () => {
      const w = await p.wrap(SEED, CTX, sig());
      emu.faults.add({ kind: 'corrupt' });
      try {
        const enc = emu.faults.callCount('Encrypt');
        const e = await rejectsWith(p.wrap(SEED, CTX, sig()), 'unavailable', /ciphertext_crc32c/);
        assert.equal(e.countsAgainstBreaker, true);
        assert.equal(emu.faults.callCount('Encrypt') - enc, 3);
        await rejectsWith(p.unwrap(w, CTX, sig()), 'unavailable', /plaintext_crc32c/);
      } finally {
        emu.faults.clear();
      }
    });
  });

  describe('retries', () => {
    it('UNAVAILABLE is retried within the attempt budget', async () => {
      await p.describe(sig());
      const before = emu.faults.callCount('Encrypt');
      emu.faults.add({ kind: 'error', count: 2 });
      await p.wrap(SEED, CTX, sig());
      assert.equal(emu.faults.callCount('Encrypt') - before, 3);
    });

    it('RESOURCE_EXHAUSTED is not retried and carries the server retry delay', async () => {
      await p.describe(sig());
      const before = emu.faults.callCount('Encrypt');
      emu.faults.add({ kind: 'throttle', count: 1 });
      const e = await rejectsWith(p.wrap(SEED, CTX, sig()), 'throttled');
      assert.equal(e.retryAfterMs, 1000);
      assert.equal(emu.faults.callCount('Encrypt') - before, 1);
    });
  });

  it('an abort cancels the RPC on the server, not just the wait', async () => {
    // Timeouts far beyond the test's: only a cancelled stream lets the emulator see the cancellation.
    const slow = providerFor(emu, key, { requestTimeoutMs: 60_000, callTimeoutMs: 120_000 });
    await slow.describe(sig());
    const cancelled = emu.stats.cancelled;
    emu.faults.add({ kind: 'latency', ms: 60_000 });
    try {
      const ac = new AbortController();
      const pending = slow.wrap(SEED, CTX, ac.signal);
      setTimeout(() => ac.abort(), 50);
      await rejectsWith(pending, 'timeout');
      while (emu.stats.cancelled === cancelled) await new Promise((r) => setTimeout(r, 10));
    } finally {
      emu.faults.clear();
    }
  });

  it('describe() is served from cache: one GetCryptoKey for many describes and wraps', async () => {
    const fresh = providerFor(emu, key);
    const before = emu.faults.callCount('GetCryptoKey');
    const [a, b] = await Promise.all([fresh.describe(sig()), fresh.describe(sig())]);
    await fresh.wrap(SEED, CTX, sig());
    await fresh.describe(sig());
    assert.equal(a.currentVersionRef, b.currentVersionRef);
    assert.equal(emu.faults.callCount('GetCryptoKey') - before, 1);
    assert.equal(a.details.keyName, key);
  });

  it('wraps name the exact primary version: a rotation made elsewhere is adopted at the next probe', async () => {
    const k = await emu.createKey('proj', 'europe-west1', 'ring', 'shared');
    const mine = providerFor(emu, k);
    const other = providerFor(emu, k);
    const before = await mine.describe(sig());
    const rotated = await other.rotate(sig());
    // Until something refreshes it, wrap() keeps to the version describe() reports (v1 is still ENABLED):
    // Cloud KMS propagates a primary change to Encrypt-by-key-name only eventually, so naming it is what
    // keeps key_id stable.
    assert.equal((await mine.wrap(SEED, CTX, sig())).keyVersionRef, before.currentVersionRef);
    assert.equal((await mine.describe(sig())).currentVersionRef, before.currentVersionRef);
    await mine.probe(sig());
    assert.equal((await mine.describe(sig())).currentVersionRef, rotated.currentVersionRef);
    assert.equal((await mine.wrap(SEED, CTX, sig())).keyVersionRef, rotated.currentVersionRef);
  });

  it('a disabled cached primary is replaced at once when the key has a new one', async () => {
    const k = await emu.createKey('proj', 'europe-west1', 'ring', 'moved');
    const mine = providerFor(emu, k, { refreshMinIntervalMs: 0 });
    const old = await mine.wrap(SEED, CTX, sig());
    const rotated = await providerFor(emu, k).rotate(sig());
    await emu.setVersionState(`${k}/cryptoKeyVersions/1`, 'DISABLED');
    const w = await mine.wrap(SEED, CTX, sig());
    assert.equal(w.keyVersionRef, rotated.currentVersionRef);
    assert.equal((await mine.describe(sig())).currentVersionRef, rotated.currentVersionRef);
    await rejectsWith(mine.unwrap(old, CTX, sig()), 'not-found', /DISABLED/);
    assert.deepEqual(await mine.unwrap(w, CTX, sig()), SEED);
  });

  it('failing wraps on a disabled key re-read the key at most once per refreshMinIntervalMs (read quota)', async () => {
    const k = await emu.createKey('proj', 'europe-west1', 'ring', 'offline');
    const pr = providerFor(emu, k); // default interval: 10 s
    await pr.wrap(SEED, CTX, sig());
    await emu.disableKey(k);
    try {
      const reads = emu.faults.callCount('GetCryptoKey');
      for (let i = 0; i < 5; i++) await rejectsWith(pr.wrap(SEED, CTX, sig()), 'not-found');
      assert.equal(emu.faults.callCount('GetCryptoKey') - reads, 0, 'the key was read moments ago');
    } finally {
      await emu.enableKey(k);
    }
  });

  it('refs stay unique when a key is re-created under the same name, and old blobs are refused as not-found', async () => {
    const second = await startGcpKmsEmulator();
    try {
      const sameName = await second.createKey('proj', 'europe-west1', 'ring', 'kek');
      assert.equal(sameName, key);
      const reborn = providerFor(second, sameName);
      const old = await p.wrap(SEED, CTX, sig());
      const neu = await reborn.wrap(SEED, CTX, sig());
      const [o, n] = [parseVersionRef(old.keyVersionRef), parseVersionRef(neu.keyVersionRef)];
      assert.ok(o && n);
      assert.equal(n.versionName, `${key}/cryptoKeyVersions/1`);
      assert.notEqual(neu.keyVersionRef, (await p.describe(sig())).currentVersionRef);
      assert.notEqual(o.keyCreateTime, n.keyCreateTime);
      await rejectsWith(reborn.unwrap(old, CTX, sig()), 'not-found', /earlier GCP KMS key/);
    } finally {
      await second.close();
    }
  });

  it('unwrap refuses foreign and malformed refs without calling Decrypt', async () => {
    const w = await p.wrap(SEED, CTX, sig());
    const before = emu.faults.callCount('Decrypt');
    const otherKey = w.keyVersionRef.replace('/cryptoKeys/kek/', '/cryptoKeys/other/');
    await rejectsWith(p.unwrap({ ...w, keyVersionRef: otherKey }, CTX, sig()), 'not-found', /cryptoKeys\/other/);
    await rejectsWith(p.unwrap({ ...w, keyVersionRef: 'local:0123456789abcdef:v1' }, CTX, sig()), 'corrupt');
    await rejectsWith(p.unwrap({ ...w, wrapped: Buffer.alloc(0) }, CTX, sig()), 'corrupt');
    assert.equal(emu.faults.callCount('Decrypt'), before);
  });

  it('probe() reads the key only, and reports a disabled primary as not-found', async () => {
    const k = await emu.createKey('proj', 'europe-west1', 'ring', 'probe');
    const pr = providerFor(emu, k);
    const crypto = emu.faults.callCount('Encrypt') + emu.faults.callCount('Decrypt');
    await pr.probe(sig());
    assert.equal(emu.faults.callCount('Encrypt') + emu.faults.callCount('Decrypt'), crypto, 'no crypto call, no crypto quota');
    await emu.disableKey(k);
    try {
      await rejectsWith(pr.probe(sig()), 'not-found', /DISABLED/);
    } finally {
      await emu.enableKey(k);
    }
    await pr.probe(sig());
    await rejectsWith(providerFor(emu, k.replace(/probe$/, 'nope')).probe(sig()), 'not-found');
  });

  describe('rotation of versions that are generated asynchronously (HSM)', () => {
    let hsm: GcpKmsEmulator;
    before(async () => {
      hsm = await startGcpKmsEmulator({ generationDelayMs: 300 });
    });
    after(async () => {
      await hsm.close();
    });

    it('rotate() waits until the new version is ENABLED, then makes it primary', async () => {
      const k = await hsm.createKey('proj', 'us', 'ring', 'hsm');
      const pr = providerFor(hsm, k);
      const old = await pr.wrap(SEED, CTX, sig());
      const d = await pr.rotate(sig());
      assert.match(d.currentVersionRef, /\/cryptoKeyVersions\/2@/);
      assert.ok(hsm.faults.callCount('GetCryptoKeyVersion') >= 1, 'polled the pending version');
      assert.equal((await pr.wrap(SEED, CTX, sig())).keyVersionRef, d.currentVersionRef);
      assert.deepEqual(await pr.unwrap(old, CTX, sig()), SEED);
    });

    it('rotate() gives up on a version still pending at rotationTimeoutMs and leaves the primary alone', async () => {
      const slowGen = await startGcpKmsEmulator({ generationDelayMs: 60_000 });
      try {
        const k = await slowGen.createKey('proj', 'us', 'ring', 'stuck');
        const pr = providerFor(slowGen, k, { rotationTimeoutMs: 300 });
        const before = await pr.describe(sig());
        await rejectsWith(pr.rotate(sig()), 'timeout', /PENDING_GENERATION/);
        assert.equal((await pr.describe(sig())).currentVersionRef, before.currentVersionRef);
        assert.equal(slowGen.faults.callCount('UpdateCryptoKeyPrimaryVersion'), 0);
      } finally {
        await slowGen.close();
      }
    });
  });
});

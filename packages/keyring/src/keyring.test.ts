import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KekError, isKekError } from '@kekbroker/core';
import { FakeProvider } from './test-support';
import { DefaultKeyCache, L1Cache } from '@kekbroker/cache';
import { Keyring } from './keyring';

const sig = (): AbortSignal => AbortSignal.timeout(5000);

async function ring(n = 2, minWraps = 1) {
  const providers = Array.from({ length: n }, (_, i) => new FakeProvider(`p${i}`));
  const cache = new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 100, maxBytes: 1 << 20, ttlMs: 60_000 }), maxStaleMs: 0 });
  const k = new Keyring({ name: 'prod', providers, minWraps, cache });
  await k.refresh(sig());
  return { k, providers, cache };
}

test('Precondition: a keyring needs providers, and minWraps cannot exceed them', () => {
  const cache = new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 1, maxBytes: 1 << 20, ttlMs: 1 }), maxStaleMs: 0 });
  assert.throws(() => new Keyring({ name: 'x', providers: [], cache }), /has no providers/);
  assert.throws(() => new Keyring({ name: 'x', providers: [new FakeProvider('a')], minWraps: 2, cache }), /minWraps exceeds/);
});

test('wrap seals under every provider; any one of them can unwrap', async () => {
  const { k, providers, cache } = await ring(3);
  const seed = Buffer.alloc(32, 9);
  const w = await k.wrap('t1', seed, sig());
  assert.equal(w.keyId, k.keyId);
  assert.deepEqual(providers.map((p) => p.calls.wrap), [1, 1, 1]);
  cache.clear();
  providers[0]!.fail = new KekError('unavailable', 'down');
  providers[1]!.fail = new KekError('unavailable', 'down');
  const u = await k.unwrap('t1', w.ciphertext, sig());
  assert.deepEqual(u.plaintext, seed);
  assert.equal(u.cached, false);
});

test('an active that is down degrades the envelope instead of failing it; one that refuses the key fails it', async () => {
  const { k, providers } = await ring(2);
  providers[1]!.fail = new KekError('unavailable', 'passive down');
  await k.wrap('t1', Buffer.alloc(32, 1), sig());
  providers[1]!.fail = undefined;
  providers[0]!.fail = new KekError('unavailable', 'active down');
  const w = await k.wrap('t1', Buffer.alloc(32, 1), sig());
  assert.equal(w.keyId, k.keyId, 'key_id unchanged');
  providers[0]!.fail = new KekError('permission-denied', 'key disabled');
  await assert.rejects(k.wrap('t1', Buffer.alloc(32, 1), sig()), (e: unknown) => isKekError(e) && e.code === 'permission-denied');
  const strict = await ring(2, 2);
  strict.providers[1]!.fail = new KekError('unavailable', 'passive down');
  await assert.rejects(strict.k.wrap('t1', Buffer.alloc(32, 1), sig()), /minWraps is 2/);
});

test('unwrap hits the cache for the same tenant only; concurrent misses make one provider call', async () => {
  const { k, providers, cache } = await ring(1);
  const w = await k.wrap('t1', Buffer.alloc(32, 3), sig());
  const verifyCalls = providers[0]!.calls.unwrap;
  const hit = await k.unwrap('t1', w.ciphertext, sig());
  assert.equal(hit.cached, true, 'the wrap populated the cache');
  assert.equal(providers[0]!.calls.unwrap, verifyCalls, 'no provider call on a hit');
  await assert.rejects(k.unwrap('t2', w.ciphertext, sig()), (e: unknown) => isKekError(e) && e.code === 'corrupt');
  cache.clear();
  providers[0]!.calls.unwrap = 0;
  const all = await Promise.all(Array.from({ length: 20 }, () => k.unwrap('t1', w.ciphertext, sig())));
  assert.ok(all.every((r) => r.plaintext.equals(Buffer.alloc(32, 3))));
  assert.equal(providers[0]!.calls.unwrap, 1, 'single-flight');
});

test('rotation moves key_id; old envelopes report stale and still open', async () => {
  const { k, cache } = await ring(2);
  const before = k.keyId;
  const w = await k.wrap('t1', Buffer.alloc(32, 4), sig());
  const after = await k.rotate(sig());
  assert.notEqual(after, before);
  cache.clear();
  const u = await k.unwrap('t1', w.ciphertext, sig());
  assert.equal(u.keyId, before);
  assert.equal(u.stale, true);
  assert.equal((await k.wrap('t1', Buffer.alloc(32, 4), sig())).keyId, after);
});

test('a provider rotated behind our back is noticed at the next wrap', async () => {
  const { k, providers } = await ring(1);
  const before = k.keyId;
  providers[0]!.version = 9;
  const w = await k.wrap('t1', Buffer.alloc(32, 5), sig());
  assert.notEqual(w.keyId, before);
  assert.equal(k.keyId, w.keyId);
});

test('a caller error (corrupt) does not mark a provider down', async () => {
  const { k } = await ring(1);
  const w = await k.wrap('t1', Buffer.alloc(32, 6), sig());
  await assert.rejects(k.unwrap('other', w.ciphertext, sig()));
  assert.equal(k.status().healthy, true);
});

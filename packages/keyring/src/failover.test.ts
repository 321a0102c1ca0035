import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KekError, decodeEnvelope, isKekError } from '@kekbroker/core';
import { DefaultKeyCache, L1Cache } from '@kekbroker/cache';
import { ProviderGuard, boundedSignal } from '@kekbroker/resilience';
import { Keyring, type KeyringEvent } from './keyring';
import { FakeProvider } from './test-support';
import { MemoryVersionRefStore } from './version-ref-store';

const sig = (ms = 5000): AbortSignal => boundedSignal(ms);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ring(n = 3, opts: { holdDownMs?: number; minWraps?: number } = {}) {
  const providers = Array.from({ length: n }, (_, i) => new FakeProvider(`p${i}`));
  const guards = new Map(providers.map((p) => [p.id, new ProviderGuard(p.id, { breaker: { volumeThreshold: 3, halfOpenAfterMs: 100 } })] as const));
  const cache = new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 100, maxBytes: 1 << 20, ttlMs: 60_000 }), maxStaleMs: 0 });
  const events: KeyringEvent[] = [];
  const k = new Keyring({ name: 'prod', providers, cache, guards, holdDownMs: opts.holdDownMs ?? 400, minWraps: opts.minWraps ?? 1, onEvent: (e) => events.push(e) });
  await k.refresh(sig());
  const done = () => { for (const g of guards.values()) g.shutdown(); };
  return { k, providers, guards, cache, events, done };
}

const wrapsOf = (ct: Buffer) => decodeEnvelope(ct).wraps.map((w) => w.providerId);

test('active outage: no failed wrap, breaker opens, acting active moves, key_id stays, degraded envelopes counted', async () => {
  const { k, providers, guards, cache, events, done } = await ring(3);
  const keyId = k.keyId;
  providers[0]!.fail = new KekError('unavailable', 'connection refused');
  const seeds = Array.from({ length: 6 }, (_, i) => Buffer.alloc(32, i + 1));
  const cts = [];
  for (const s of seeds) cts.push((await k.wrap('t1', s, sig())).ciphertext);
  assert.equal(guards.get('p0')!.state, 'open');
  const st = k.status();
  assert.equal(st.actingActive, 'p1');
  assert.equal(st.keyId, keyId);
  assert.equal(st.healthy, true, 'a passive can act: the keyring is healthy');
  assert.deepEqual(st.providers.map((p) => p.role), ['down', 'active', 'passive']);
  assert.equal(events.filter((e) => e.type === 'degraded').length, 6, 'every envelope of the outage lacks p0');
  assert.deepEqual(st.degradedEnvelopes, { [keyId as string]: { p0: 6 } }, 'counted per generation for the usage report');
  assert.ok(cts.every((c) => !wrapsOf(c).includes('p0')));
  // Every envelope written during the outage opens with p0 back and another provider down.
  providers[0]!.fail = undefined;
  providers[1]!.fail = new KekError('unavailable', 'down too');
  cache.clear();
  for (const [i, c] of cts.entries()) assert.deepEqual((await k.unwrap('t1', c, sig())).plaintext, seeds[i]);
  done();
});

test('failback waits for the hold-down period after the breaker closes', async () => {
  const { k, providers, guards, events, done } = await ring(2, { holdDownMs: 400 });
  providers[0]!.fail = new KekError('unavailable', 'down');
  for (let i = 0; i < 3; i++) await k.wrap('t1', Buffer.alloc(32, 1), sig());
  assert.equal(k.status().actingActive, 'p1');
  providers[0]!.fail = undefined;
  await sleep(150); // half-open
  await k.probe(sig()); // trial call closes the breaker
  assert.equal(guards.get('p0')!.state, 'closed');
  assert.equal(k.status().actingActive, 'p1', 'not before the hold-down');
  assert.ok(k.status().providers[0]!.holdDownLeftSeconds > 0);
  await sleep(450);
  assert.equal(k.status().actingActive, 'p0', 'failback after the hold-down');
  const moves = events.filter((e) => e.type === 'acting-active');
  assert.deepEqual(moves.map((e) => e.type === 'acting-active' && [e.change.to, e.change.cause]), [['p1', 'breaker'], ['p0', 'failback']]);
  done();
});

test('a flapping active moves the acting active at most twice', async () => {
  const { k, providers, events, done } = await ring(2, { holdDownMs: 2000 });
  const end = Date.now() + 1500;
  let failed = 0;
  for (let i = 0; Date.now() < end; i++) {
    providers[0]!.fail = Math.floor(i / 5) % 2 === 0 ? new KekError('unavailable', 'flap') : undefined;
    await k.wrap('t1', Buffer.alloc(32, 2), sig()).catch(() => failed++);
    await k.probe(sig());
    await sleep(20);
  }
  assert.equal(failed, 0);
  assert.ok(events.filter((e) => e.type === 'acting-active').length <= 2);
  done();
});

test('a refused (revoked) active key: unhealthy, names provider, key and fix; no silent failover; pinned failover restores writes', async () => {
  const { k, providers, events, done } = await ring(2);
  providers[0]!.fail = new KekError('permission-denied', 'key p0 is disabled');
  await assert.rejects(k.wrap('t1', Buffer.alloc(32, 3), sig()), (e: unknown) => isKekError(e) && e.code === 'permission-denied');
  const st = k.status();
  assert.equal(st.healthy, false);
  assert.match(st.reason, /acting active p0 refuses key p0:v1: permission-denied: key p0 is disabled/);
  assert.match(st.reason, /failover \{"provider":"p1","pin":true\}/);
  assert.equal(st.actingActive, 'p0', 'no automatic failover');
  k.failover('p1', true);
  const w = await k.wrap('t1', Buffer.alloc(32, 3), sig());
  assert.deepEqual(wrapsOf(w.ciphertext), ['p1']);
  assert.equal(k.status().healthy, true);
  assert.equal(k.status().pinned, true);
  providers[0]!.fail = undefined;
  await k.probe(sig());
  k.failback();
  assert.equal(k.status().actingActive, 'p0');
  assert.ok(events.some((e) => e.type === 'misconfigured' && e.provider === 'p0'));
  done();
});

test('a provider returning wrong keys: unwrap is served by another wrap and the liar is reported; new wraps exclude it', async () => {
  const { k, providers, cache, events, done } = await ring(3);
  const seed = Buffer.alloc(32, 4);
  const good = await k.wrap('t1', seed, sig());
  providers[0]!.lie = true;
  cache.clear();
  assert.deepEqual((await k.unwrap('t1', good.ciphertext, sig())).plaintext, seed);
  assert.ok(events.some((e) => e.type === 'bad-answer' && e.provider === 'p0'));
  const fresh = await k.wrap('t1', seed, sig());
  assert.deepEqual(wrapsOf(fresh.ciphertext), ['p1', 'p2'], 'the verification left the lying wrap out');
  done();
});

test('a tampered envelope fails as corrupt under every provider and blames none', async () => {
  const { k, cache, events, guards, done } = await ring(3);
  const w = await k.wrap('t1', Buffer.alloc(32, 5), sig());
  const bad = Buffer.from(w.ciphertext);
  bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
  cache.clear();
  for (let i = 0; i < 5; i++) await assert.rejects(k.unwrap('t1', bad, sig()), (e: unknown) => isKekError(e) && e.code === 'corrupt');
  assert.equal(events.filter((e) => e.type === 'bad-answer').length, 0);
  assert.ok([...guards.values()].every((g) => g.state === 'closed'));
  done();
});

test('a slow passive is dropped from the envelope instead of making the caller wait', async () => {
  const { k, providers, events, done } = await ring(2);
  providers[1]!.delayMs = 60_000;
  const w = await k.wrap('t1', Buffer.alloc(32, 6), sig(2000));
  assert.deepEqual(wrapsOf(w.ciphertext), ['p0']);
  assert.ok(events.some((e) => e.type === 'passive-dropped' && e.provider === 'p1'));
  assert.ok(events.some((e) => e.type === 'degraded' && e.missing.includes('p1')));
  done();
});

test('a slow active on unwrap leaves time for the next wrap within the caller deadline', async () => {
  const { k, providers, cache, done } = await ring(2);
  const seed = Buffer.alloc(32, 7);
  const w = await k.wrap('t1', seed, sig());
  cache.clear();
  providers[0]!.delayMs = 60_000;
  assert.deepEqual((await k.unwrap('t1', w.ciphertext, sig(1500))).plaintext, seed);
  done();
});

test('start with a provider down keeps the key_id saved by an earlier run', async () => {
  const store = new MemoryVersionRefStore();
  const providers = [new FakeProvider('p0'), new FakeProvider('p1')];
  const mk = () => new Keyring({ name: 'prod', providers, cache: new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 1, maxBytes: 1 << 20, ttlMs: 1000 }), maxStaleMs: 0 }), versionRefs: store });
  const first = mk();
  await first.refresh(sig());
  providers[1]!.fail = new KekError('unavailable', 'down at start');
  const second = mk();
  await second.refresh(sig());
  assert.equal(second.keyId, first.keyId);
  assert.equal(second.status().providers[1]!.versionRefFromStore, true);
  const w = await second.wrap('t1', Buffer.alloc(32, 8), sig());
  assert.equal(w.keyId, first.keyId);
  const third = new Keyring({ name: 'prod', providers, cache: new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 1, maxBytes: 1 << 20, ttlMs: 1000 }), maxStaleMs: 0 }), versionRefs: new MemoryVersionRefStore() });
  await assert.rejects(third.refresh(sig()), /down at start/);
  assert.match(third.status().reason, /key_id unknown: p1 never described/);
});

test('an isolated provider gets no traffic at all until restored', async () => {
  const { k, providers, guards, done } = await ring(2);
  guards.get('p0')!.isolate();
  const before = providers[0]!.calls.wrap;
  await k.wrap('t1', Buffer.alloc(32, 9), sig());
  assert.equal(providers[0]!.calls.wrap, before);
  assert.equal(k.status().actingActive, 'p1');
  assert.equal(k.status().providers[0]!.role, 'isolated');
  guards.get('p0')!.restore();
  k.failback();
  assert.equal(k.status().actingActive, 'p0');
  done();
});

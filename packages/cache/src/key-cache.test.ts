import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KekError } from '@kekbroker/core';
import { CACHE_SEALING_TENANT, DefaultKeyCache } from './key-cache';
import { L1Cache } from './l1';

const meta = { tenant: 'a', keyring: 'k', generation: '0102' };
const cache = (ttlMs = 60_000, maxStaleMs = 0) => new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 100, maxBytes: 1 << 20, ttlMs, maxStaleMs }), maxStaleMs });

test('concurrent misses make one load; every caller owns its copy; the hit after is cached', async () => {
  const c = cache();
  let loads = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const load = async (): Promise<Buffer> => {
    loads++;
    await gate;
    return Buffer.alloc(32, 9);
  };
  const all = Array.from({ length: 20 }, () => c.getOrLoad('x', meta, new AbortController().signal, load));
  release();
  const got = await Promise.all(all);
  assert.equal(loads, 1);
  got[0]?.plaintext.fill(0);
  for (const g of got.slice(1)) assert.deepEqual(g.plaintext, Buffer.alloc(32, 9));
  const again = await c.getOrLoad('x', meta, new AbortController().signal, load);
  assert.deepEqual(again, { plaintext: Buffer.alloc(32, 9), cached: true, stale: false });
});

test('stale serving: only for unavailable/timeout/throttled, only within maxStale, and counted', async () => {
  const c = cache(20, 60_000);
  const stales: string[] = [];
  const c2 = new DefaultKeyCache({ l1: c.l1, maxStaleMs: 60_000, onStale: (_m, cause) => stales.push(cause) });
  c2.put('x', meta, Buffer.from('old'));
  await new Promise((r) => setTimeout(r, 40));
  const r = await c2.getOrLoad('x', meta, new AbortController().signal, () => Promise.reject(new KekError('unavailable', 'kms down')));
  assert.deepEqual(r, { plaintext: Buffer.from('old'), cached: true, stale: true });
  assert.deepEqual(stales, ['unavailable']);
  await assert.rejects(c2.getOrLoad('x', meta, new AbortController().signal, () => Promise.reject(new KekError('corrupt', 'tampered'))), /tampered/);
  await assert.rejects(c2.getOrLoad('x', meta, new AbortController().signal, () => Promise.reject(new KekError('permission-denied', 'revoked key'))), /revoked key/);
  const noStale = cache(20, 0);
  noStale.put('x', meta, Buffer.from('old'));
  await new Promise((r) => setTimeout(r, 40));
  await assert.rejects(noStale.getOrLoad('x', meta, new AbortController().signal, () => Promise.reject(new KekError('unavailable', 'kms down'))), /kms down/);
});

test('a revoked generation is never served from cache, fresh or stale, and is not cached again', async () => {
  const c = cache(60_000, 60_000);
  c.put('x', meta, Buffer.from('v'));
  assert.equal(c.invalidate({ keyring: 'k', generation: '0102', revoke: true }), 1);
  let loads = 0;
  const r = await c.getOrLoad('x', meta, new AbortController().signal, async () => {
    loads++;
    return Buffer.from('from-kms');
  });
  assert.equal(r.cached, false);
  assert.equal(loads, 1);
  c.put('x', meta, Buffer.from('v'));
  await assert.rejects(c.getOrLoad('x', meta, new AbortController().signal, () => Promise.reject(new KekError('unavailable', 'down'))), /down/);
});

test('flush by tenant leaves other tenants; the sealing tenant is never cached', async () => {
  const c = cache();
  c.put('a1', meta, Buffer.from('a'));
  c.put('b1', { ...meta, tenant: 'b' }, Buffer.from('b'));
  c.put('s', { ...meta, tenant: CACHE_SEALING_TENANT }, Buffer.from('sealing key'));
  assert.equal(c.l1.size, 2);
  assert.equal(c.invalidate({ keyring: 'k', tenant: 'a' }), 1);
  assert.equal(c.l1.get('a1'), undefined);
  assert.deepEqual(c.l1.get('b1'), Buffer.from('b'));
});

test('a shared load is not abandoned while a later caller still waits (the first caller\'s deadline is not the flight\'s)', async () => {
  const c = cache();
  const first = new AbortController();
  const second = new AbortController();
  let loadSignal: AbortSignal | undefined;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const load = async (s?: AbortSignal): Promise<Buffer> => {
    loadSignal = s;
    await gate;
    return Buffer.from('v');
  };
  const a = c.getOrLoad('x', meta, first.signal, load);
  const b = c.getOrLoad('x', meta, second.signal, load);
  first.abort();
  assert.equal(loadSignal?.aborted, false, 'still wanted by the second caller');
  release();
  assert.deepEqual((await b).plaintext, Buffer.from('v'));
  await a;
  const third = new AbortController();
  let release2!: () => void;
  const gate2 = new Promise<void>((r) => (release2 = r));
  const p = c.getOrLoad('y', meta, third.signal, async (s) => {
    loadSignal = s;
    await gate2;
    return Buffer.from('w');
  });
  third.abort();
  assert.equal(loadSignal?.aborted, true, 'aborted once nobody waits');
  release2();
  await p;
});

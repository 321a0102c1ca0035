import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENTRY_OVERHEAD_BYTES, L1Cache } from './l1';

const meta = (tenant = 't', generation = '01') => ({ tenant, keyring: 'k', generation });
/** The cache's own stored bytes for `key` (a view, not a copy), reached through its internals. */
const inner = (c: L1Cache, key: string): Buffer | undefined => {
  const i = c as unknown as { lru: { peek(k: string): number | { value: Buffer } | undefined }; slabs: { slabs: Array<{ mem: Buffer; lengths: Uint8Array }> } };
  const v = i.lru.peek(key);
  if (typeof v !== 'number') return v?.value;
  const slab = i.slabs.slabs[Math.floor(v / 1024)] as { mem: Buffer; lengths: Uint8Array };
  const at = (v % 1024) * 64;
  return slab.mem.subarray(at, at + (slab.lengths[v % 1024] as number));
};

test('Precondition: you cannot cache key material forever', () => {
  assert.throws(() => new L1Cache({ maxEntries: 1, maxBytes: 100, ttlMs: 0 }), /positive ttlMs/);
});

test('bounded by entries: the least recently used entry goes, and its bytes are zeroed', () => {
  const c = new L1Cache({ maxEntries: 2, maxBytes: 1 << 20, ttlMs: 60_000 });
  c.set('a', meta(), Buffer.from('aaaa'));
  const storedA = inner(c, 'a') as Buffer;
  c.set('b', meta(), Buffer.from('bbbb'));
  assert.deepEqual(c.get('a'), Buffer.from('aaaa')); // a is now most recent
  const storedB = inner(c, 'b') as Buffer;
  c.set('c', meta(), Buffer.from('cccc'));
  assert.equal(c.get('b'), undefined);
  assert.deepEqual(storedB, Buffer.alloc(4), 'the evicted copy was zeroed');
  assert.deepEqual(storedA, Buffer.from('aaaa'));
  assert.equal(c.size, 2);
});

test('bounded by bytes as well as entries', () => {
  const entry = 1024 + ENTRY_OVERHEAD_BYTES;
  const c = new L1Cache({ maxEntries: 1000, maxBytes: entry * 3, ttlMs: 60_000 });
  for (let i = 0; i < 10; i++) c.set(`k${i}`, meta(), Buffer.alloc(1024, i));
  assert.equal(c.size, 3);
  assert.ok(c.bytes <= entry * 3);
  assert.deepEqual(c.get('k9'), Buffer.alloc(1024, 9));
  assert.equal(c.get('k0'), undefined);
});

test('one tenant cannot take more than its share; others keep their entries', () => {
  const c = new L1Cache({ maxEntries: 10, maxBytes: 1 << 20, ttlMs: 60_000, perTenantMaxFraction: 0.5 });
  for (let i = 0; i < 3; i++) c.set(`quiet${i}`, meta('quiet'), Buffer.alloc(32, i));
  for (let i = 0; i < 50; i++) c.set(`noisy${i}`, meta('noisy'), Buffer.alloc(32, i));
  for (let i = 0; i < 3; i++) assert.deepEqual(c.get(`quiet${i}`), Buffer.alloc(32, i), 'the quiet tenant kept everything');
  assert.equal(c.size, 3 + 5);
  assert.deepEqual(c.get('noisy49'), Buffer.alloc(32, 49), 'the noisy tenant keeps its newest');
  assert.equal(c.tenantBytes('noisy'), 5 * (32 + ENTRY_OVERHEAD_BYTES));
});

test('values are compact own copies (the cache\'s own slabs), handed out as copies', () => {
  const c = new L1Cache({ maxEntries: 10, maxBytes: 1 << 20, ttlMs: 60_000 });
  const mine = Buffer.from('secret-seed-bytes');
  c.set('k', meta(), mine);
  mine.fill(0);
  const stored = inner(c, 'k') as Buffer;
  assert.equal(stored.buffer.byteLength, 64 * 1024, 'lives in one of the cache\'s own slabs, not a shared pool slab');
  const big = Buffer.alloc(100, 7);
  c.set('big', meta(), big);
  assert.equal((inner(c, 'big') as Buffer).buffer.byteLength, 100, 'a value larger than a slot gets its own allocation');
  const out = c.get('k') as Buffer;
  out.fill(0);
  assert.deepEqual(c.get('k'), Buffer.from('secret-seed-bytes'));
});

test('expired entries miss, but stay for stale serving inside maxStale; deleteWhere reaches them and zeroes', async () => {
  const c = new L1Cache({ maxEntries: 10, maxBytes: 1 << 20, ttlMs: 30, maxStaleMs: 60_000 });
  c.set('k', meta('t', 'aa'), Buffer.from('v'));
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(c.get('k'), undefined);
  assert.deepEqual(c.getStale('k')?.value, Buffer.from('v'));
  const stored = inner(c, 'k') as Buffer;
  assert.equal(c.deleteWhere((m) => m.generation === 'aa'), 1);
  assert.equal(c.getStale('k'), undefined);
  assert.deepEqual(stored, Buffer.alloc(1));
});

test('maxEntries 0 disables the cache', () => {
  const c = new L1Cache({ maxEntries: 0, maxBytes: 100, ttlMs: 10 });
  c.set('k', meta(), Buffer.from('v'));
  assert.equal(c.get('k'), undefined);
});

test('slab slots are zeroed and reused on eviction; an empty slab is released', () => {
  const c = new L1Cache({ maxEntries: 3000, maxBytes: 1 << 30, ttlMs: 60_000 });
  for (let i = 0; i < 2048; i++) c.set(`k${i}`, meta(), Buffer.alloc(32, 1 + (i % 200)));
  const slabs = (c as unknown as { slabs: { slabCount: number } }).slabs;
  assert.equal(slabs.slabCount, 2);
  const first = inner(c, 'k0') as Buffer;
  for (let i = 0; i < 1024; i++) c.delete(`k${i}`);
  assert.deepEqual(first, Buffer.alloc(32), 'zeroed on delete');
  assert.equal(slabs.slabCount, 1, 'the emptied slab is gone');
  for (let i = 1024; i < 2048; i++) assert.deepEqual(c.get(`k${i}`), Buffer.alloc(32, 1 + (i % 200)));
});

test('lean entries: a small value is only a slot number in lru-cache; one tenant\'s entries share one metadata object', () => {
  const c = new L1Cache({ maxEntries: 100, maxBytes: 1 << 20, ttlMs: 60_000 });
  const i = c as unknown as { lru: { peek(k: string): unknown }; tenants: Map<string, { metas: Map<string, object> }> };
  // Fresh strings per request (as from gRPC metadata and key_id parsing), equal in value.
  for (let n = 0; n < 50; n++) c.set(`k${n}`, { tenant: String.fromCharCode(116), keyring: 'k', generation: `0${n % 2 ? 'a' : 'b'}` }, Buffer.alloc(32, n));
  assert.equal(typeof i.lru.peek('k0'), 'number');
  assert.equal(i.tenants.get('t')?.metas.size, 2, 'two generations: two shared metadata objects for 50 entries');
  for (let n = 0; n < 50; n++) c.delete(`k${n}`);
  assert.equal(i.tenants.size, 0, 'a tenant with no entries left is forgotten, its metadata with it');
  assert.equal(c.tenantBytes('t'), 0);
});

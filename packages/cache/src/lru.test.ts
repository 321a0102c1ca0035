import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LruCache } from './lru';
import { SingleFlight } from './single-flight';

test('Precondition: you cannot cache key material forever', () => {
  assert.throws(() => new LruCache({ maxEntries: 1, ttlMs: 0 }), /positive ttlMs/);
});

test('evicts the least recently used entry and zeroes it', () => {
  const c = new LruCache({ maxEntries: 2, ttlMs: 1000 });
  const a = Buffer.from('aaaa');
  c.set('a', a);
  c.set('b', Buffer.from('bbbb'));
  assert.deepEqual(c.get('a'), Buffer.from('aaaa')); // a is now most recent
  c.set('c', Buffer.from('cccc'));
  assert.equal(c.get('b'), undefined);
  assert.deepEqual(c.get('a'), Buffer.from('aaaa'));
  assert.equal(c.size, 2);
  assert.deepEqual(a, Buffer.from('aaaa'), 'the caller keeps its own buffer; the cache stored a copy');
});

test('hands out copies, so a caller zeroing its value does not corrupt the cache', () => {
  const c = new LruCache({ maxEntries: 2, ttlMs: 1000 });
  c.set('k', Buffer.from('secret'));
  const v = c.get('k');
  v?.fill(0);
  assert.deepEqual(c.get('k'), Buffer.from('secret'));
});

test('expired entries miss', () => {
  let now = 0;
  const c = new LruCache({ maxEntries: 2, ttlMs: 10, now: () => now });
  c.set('k', Buffer.from('v'));
  now = 9;
  assert.ok(c.get('k'));
  now = 10;
  assert.equal(c.get('k'), undefined);
  assert.equal(c.size, 0);
});

test('maxEntries 0 disables the cache', () => {
  const c = new LruCache({ maxEntries: 0, ttlMs: 10 });
  c.set('k', Buffer.from('v'));
  assert.equal(c.get('k'), undefined);
});

test('single-flight: concurrent callers share one call', async () => {
  const sf = new SingleFlight<number>();
  let calls = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const fn = async (): Promise<number> => {
    calls++;
    await gate;
    return 42;
  };
  const ps = [sf.run('k', fn), sf.run('k', fn), sf.run('k', fn)];
  assert.equal(sf.pending, 1);
  release();
  assert.deepEqual(await Promise.all(ps), [42, 42, 42]);
  assert.equal(calls, 1);
  assert.equal(sf.pending, 0);
  assert.equal(await sf.run('k', fn), 42);
  assert.equal(calls, 2, 'a later call runs again');
});

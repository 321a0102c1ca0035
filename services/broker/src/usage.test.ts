import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageBook } from './usage';

test('usage per generation and tenant: counts, first and last seen, current generation first', () => {
  const book = new UsageBook();
  const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
  book.record('ring', 'kekbroker/ring/old', 'cluster-a', 'unwrap', t(1));
  book.record('ring', 'kekbroker/ring/old', 'cluster-a', 'unwrap', t(5));
  book.record('ring', 'kekbroker/ring/old', 'cluster-b', 'wrap', t(2));
  book.record('ring', 'kekbroker/ring/new', 'cluster-b', 'wrap', t(6));
  book.record('other', 'kekbroker/other/x', 'cluster-a', 'wrap', t(3));
  const r = book.report('ring', 'kekbroker/ring/new');
  assert.equal(r.scope, 'replica');
  assert.deepEqual(r.generations.map((g) => [g.keyId, g.current]), [['kekbroker/ring/new', true], ['kekbroker/ring/old', false]]);
  const old = r.generations[1];
  assert.deepEqual(old?.tenants.map((x) => x.tenant), ['cluster-a', 'cluster-b']);
  assert.deepEqual(old?.tenants[0]?.unwrap, { count: 2, firstSeen: t(1).toISOString(), lastSeen: t(5).toISOString() });
  assert.equal(old?.tenants[0]?.wrap, undefined);
  assert.deepEqual(book.readersSince('ring', 'kekbroker/ring/old', t(4)), ['cluster-a']);
  assert.deepEqual(book.readersSince('ring', 'kekbroker/ring/old', t(6)), []);
});

test('a current generation nobody used yet is still listed', () => {
  const r = new UsageBook().report('ring', 'kekbroker/ring/now');
  assert.deepEqual(r.generations, [{ keyId: 'kekbroker/ring/now', current: true, tenants: [] }]);
});

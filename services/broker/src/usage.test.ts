import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { UsageDelta, UsageRow } from '@kekbroker/ha';
import { UsageBook, type SharedUsage } from './usage';

const t = (s: number): number => Date.UTC(2026, 0, 1, 0, 0, s);
const iso = (s: number): string => new Date(t(s)).toISOString();

test('usage per generation and tenant: counts, first and last seen, current generation first', async () => {
  const book = new UsageBook();
  book.record('ring', 'kekbroker/ring/old', 'cluster-a', 'unwrap', t(1));
  book.record('ring', 'kekbroker/ring/old', 'cluster-a', 'unwrap', t(5));
  book.record('ring', 'kekbroker/ring/old', 'cluster-b', 'wrap', t(2));
  book.record('ring', 'kekbroker/ring/new', 'cluster-b', 'wrap', t(6));
  book.record('other', 'kekbroker/other/x', 'cluster-a', 'wrap', t(3));
  const r = await book.report('ring', 'kekbroker/ring/new');
  assert.equal(r.scope, 'replica');
  assert.equal(r.partial, undefined);
  assert.deepEqual(r.generations.map((g) => [g.keyId, g.current]), [['kekbroker/ring/new', true], ['kekbroker/ring/old', false]]);
  const old = r.generations[1];
  assert.deepEqual(old?.tenants.map((x) => x.tenant), ['cluster-a', 'cluster-b']);
  assert.deepEqual(old?.tenants[0]?.unwrap, { count: 2, firstSeen: iso(1), lastSeen: iso(5) });
  assert.equal(old?.tenants[0]?.wrap, undefined);
  assert.deepEqual((await book.readersSince('ring', 'kekbroker/ring/old', new Date(t(4)))).tenants, [{ tenant: 'cluster-a', lastSeen: iso(5) }]);
  assert.deepEqual((await book.readersSince('ring', 'kekbroker/ring/old', new Date(t(6)))).tenants, []);
});

test('a current generation nobody used yet is still listed', async () => {
  const r = await new UsageBook().report('ring', 'kekbroker/ring/now');
  assert.deepEqual(r.generations, [{ keyId: 'kekbroker/ring/now', current: true, tenants: [] }]);
});

/** A stand-in for the Redis counters (the e2e test uses real Redis): merges deltas, can be made to fail. */
class FakeShared implements SharedUsage {
  rows = new Map<string, UsageRow>();
  down = false;
  async add(deltas: readonly UsageDelta[]): Promise<void> {
    if (this.down) throw new Error('connection refused');
    for (const d of deltas) {
      const k = `${d.keyring}|${d.keyId}|${d.tenant}|${d.op}`;
      const r = this.rows.get(k);
      if (r) Object.assign(r, { count: r.count + d.count, firstMs: Math.min(r.firstMs, d.firstMs), lastMs: Math.max(r.lastMs, d.lastMs) });
      else this.rows.set(k, { keyId: d.keyId, tenant: d.tenant, op: d.op, count: d.count, firstMs: d.firstMs, lastMs: d.lastMs });
    }
  }
  async load(keyring: string): Promise<UsageRow[]> {
    if (this.down) throw new Error('connection refused');
    return [...this.rows].filter(([k]) => k.startsWith(`${keyring}|`)).map(([, r]) => ({ ...r }));
  }
}

test('two replicas pool their counts; a failed flush keeps the deltas; Redis down gives a partial report that says so', async () => {
  const shared = new FakeShared();
  const a = new UsageBook(shared);
  const b = new UsageBook(shared);
  a.record('ring', 'kekbroker/ring/g1', 'cluster-a', 'unwrap', t(1));
  b.record('ring', 'kekbroker/ring/g1', 'cluster-b', 'unwrap', t(2));
  shared.down = true;
  b.record('ring', 'kekbroker/ring/g1', 'cluster-b', 'unwrap', t(3));
  await assert.rejects(b.flush(), /connection refused/);
  const partial = await a.report('ring', 'kekbroker/ring/g1');
  assert.equal(partial.scope, 'replica');
  assert.match(partial.partial ?? '', /redis unreachable/);
  assert.deepEqual(partial.generations[0]?.tenants.map((x) => x.tenant), ['cluster-a']);
  shared.down = false;
  const full = await a.report('ring', 'kekbroker/ring/g1');
  assert.equal(full.scope, 'fleet');
  assert.deepEqual(full.generations[0]?.tenants.map((x) => x.tenant), ['cluster-a']); // b has not flushed yet
  const readers = await b.readersSince('ring', 'kekbroker/ring/g1', new Date(t(0))); // b flushes first, with the kept deltas
  assert.deepEqual(readers.tenants, [{ tenant: 'cluster-a', lastSeen: iso(1) }, { tenant: 'cluster-b', lastSeen: iso(3) }]);
  assert.equal((await a.report('ring', undefined)).generations[0]?.tenants[1]?.unwrap?.count, 2);
  a.stop();
  b.stop();
});

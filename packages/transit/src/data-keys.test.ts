/**
 * DataKeyCache with a fleet store: two caches (two replicas) over one in-memory store with the store's
 * contract (packages/ha's SharedDataKeys against real Redis is proven by test/src/e2e/transit-fleet.test.ts).
 * Here: the fleet-wide message limit through reserved blocks, and the fallback to a local key when the
 * store fails, over a real keyring of the real local provider.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { DefaultKeyCache, L1Cache } from '@kekbroker/cache';
import { Keyring } from '@kekbroker/keyring';
import { LocalProvider } from '@kekbroker/provider-local';
import { tempDir } from '@kekbroker/testkit';
import { DataKeyCache, DEFAULT_LIMITS, type DataKeyLimits, type DataKeySource, type SharedDataKeyStore, type SharedSlot } from './data-keys';

/** The store's contract in memory: one current key per slot, blocks of 1/64 of the limits reserved atomically. */
class MemoryStore implements SharedDataKeyStore {
  failing = false;
  private readonly slots = new Map<string, { id: string; dataKey: Buffer; envelope: Buffer; m: number; b: number }>();
  available(): boolean {
    return true;
  }
  async acquire(slot: SharedSlot, limits: DataKeyLimits, bytes: number, _signal: AbortSignal, create: () => Promise<{ dataKey: Buffer; envelope: Buffer }>, exhaustedId?: string) {
    if (this.failing) throw new Error('redis down');
    const k = JSON.stringify(slot);
    const cur = this.slots.get(k);
    if (cur && cur.id !== exhaustedId) {
      const budget = await this.reserve(slot, cur.id, limits, bytes);
      if (budget) return { id: cur.id, dataKey: Buffer.from(cur.dataKey), envelope: cur.envelope, ageMs: 0, budget, created: false };
    }
    const made = await create();
    const block = blockOf(limits, bytes);
    const id = randomBytes(6).toString('hex');
    this.slots.set(k, { id, dataKey: Buffer.from(made.dataKey), envelope: made.envelope, m: block.messages, b: block.bytes });
    return { id, ...made, ageMs: 0, budget: block, created: true };
  }
  async reserve(slot: SharedSlot, id: string, limits: DataKeyLimits, bytes: number) {
    if (this.failing) throw new Error('redis down');
    const cur = this.slots.get(JSON.stringify(slot));
    if (!cur || cur.id !== id) return undefined;
    const block = blockOf(limits, bytes);
    cur.m += block.messages;
    cur.b += block.bytes;
    return cur.m > limits.maxMessages || cur.b > limits.maxBytes ? undefined : block;
  }
}
const blockOf = (l: DataKeyLimits, bytes: number) => ({ messages: Math.max(1, Math.floor(l.maxMessages / 64)), bytes: Math.max(bytes, Math.floor(l.maxBytes / 64)) });

async function keyring(): Promise<{ ring: Keyring; wraps: () => number }> {
  const dir = await tempDir();
  const local = await LocalProvider.open({ id: 'local', keystore: path.join(dir, 'ks.json') });
  let wraps = 0;
  const ring = new Keyring({
    name: 'ring', providers: [local], cache: new DefaultKeyCache({ l1: new L1Cache({ maxEntries: 100, maxBytes: 1 << 20, ttlMs: 60_000 }), maxStaleMs: 0 }),
    onProviderCall: (e) => { if (e.op === 'wrap') wraps++; },
  });
  await ring.refresh(AbortSignal.timeout(10_000));
  return { ring, wraps: () => wraps };
}

test('two replicas share data keys; maxMessages holds fleet-wide (reserved blocks); a failing store falls back to a local key', async () => {
  const { ring, wraps } = await keyring();
  const store = new MemoryStore();
  const limits = { ...DEFAULT_LIMITS, maxMessages: 4 };
  const sources: DataKeySource[] = [];
  const replicas = [1, 2].map(() => new DataKeyCache(limits, (_k, source) => sources.push(source), Date.now, store));
  const spec = { keyName: 'app', tenant: 'dev', keyring: ring, versionProvider: 'local' };
  const uses = new Map<string, number>();
  for (let i = 0; i < 10; i++) {
    const env = await (replicas[i % 2] as DataKeyCache).use(spec, 16, AbortSignal.timeout(10_000), (k) => k.envelope.toString('hex'));
    uses.set(env, (uses.get(env) ?? 0) + 1);
  }
  assert.deepEqual([...uses.values()], [4, 4, 2], 'three keys, none used past the fleet-wide limit');
  assert.equal(wraps(), 3, 'one wrap per data key for both replicas');
  assert.ok(sources.includes('fleet') && sources.includes('shared'));

  store.failing = true;
  const before = wraps();
  const env = await (replicas[0] as DataKeyCache).use(spec, 16, AbortSignal.timeout(10_000), (k) => k.envelope.toString('hex'));
  assert.ok(!uses.has(env), 'a new key of its own');
  assert.equal(wraps(), before + 1);
  assert.equal(sources.at(-1), 'local');
  for (const r of replicas) r.clear();
});

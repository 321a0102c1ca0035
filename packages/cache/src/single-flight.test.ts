import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyMaterialFlight, SingleFlight } from './single-flight';

test('concurrent callers share one call and each gets its own copy; the shared result is zeroed after', async () => {
  const flight = keyMaterialFlight();
  let calls = 0;
  let shared: Buffer | undefined;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const fn = async (): Promise<Buffer> => {
    calls++;
    await gate;
    shared = Buffer.alloc(32, 7);
    return shared;
  };
  const waiters = Array.from({ length: 10 }, () => flight.run('k', fn));
  assert.equal(flight.pending, 1);
  release();
  const got = await Promise.all(waiters);
  assert.equal(calls, 1);
  for (const g of got) assert.deepEqual(g, Buffer.alloc(32, 7), 'every waiter sees the real bytes, not zeros');
  got[0]?.fill(0);
  assert.deepEqual(got[1], Buffer.alloc(32, 7), 'one waiter zeroing its copy does not touch another');
  assert.deepEqual(shared, Buffer.alloc(32), 'the flight zeroed the shared result it owned');
  assert.equal(flight.pending, 0);
});

test('a caller joining right after the result is shared out starts a new call instead of reading a zeroed buffer', async () => {
  const flight = keyMaterialFlight();
  let calls = 0;
  const fn = async (): Promise<Buffer> => Buffer.alloc(8, ++calls);
  const first = flight.run('k', fn);
  const late = first.then(() => flight.run('k', fn));
  assert.deepEqual(await first, Buffer.alloc(8, 1));
  assert.deepEqual(await late, Buffer.alloc(8, 2));
});

test('a failed call rejects every waiter and leaves nothing in flight', async () => {
  const flight = new SingleFlight<number>();
  const boom = new Error('kms down');
  const all = await Promise.allSettled([flight.run('k', () => Promise.reject(boom)), flight.run('k', () => Promise.resolve(1))]);
  assert.deepEqual(all.map((r) => r.status), ['rejected', 'rejected']);
  assert.equal(flight.pending, 0);
});

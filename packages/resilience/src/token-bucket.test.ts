import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isKekError } from '@kekbroker/core';
import { TokenBucket } from './token-bucket';

test('Precondition: a bucket needs a positive rate and a burst of at least one', () => {
  assert.throws(() => new TokenBucket({ ratePerSec: 0, burst: 1 }), /ratePerSec > 0/);
  assert.throws(() => new TokenBucket({ ratePerSec: 1, burst: 0 }), /burst >= 1/);
});

test('tryTake spends the burst, then refuses until the refill', async () => {
  const b = new TokenBucket({ ratePerSec: 50, burst: 3 });
  assert.deepEqual([b.tryTake(), b.tryTake(), b.tryTake(), b.tryTake()], [true, true, true, false]);
  await new Promise((r) => setTimeout(r, 60)); // >= 1 token at 50/s
  assert.equal(b.tryTake(), true);
});

test('take waits for a token within the signal, in arrival order', async () => {
  const b = new TokenBucket({ ratePerSec: 20, burst: 1 });
  await b.take();
  const order: number[] = [];
  await Promise.all([1, 2, 3].map((i) => b.take(AbortSignal.timeout(5000)).then(() => order.push(i))));
  assert.deepEqual(order, [1, 2, 3]);
});

test('take fails as throttled when the signal fires first, and gives its reservation back', async () => {
  const b = new TokenBucket({ ratePerSec: 1, burst: 1, name: 'call budget of provider p' });
  await b.take();
  await assert.rejects(b.take(AbortSignal.timeout(20)), (e: unknown) => isKekError(e) && e.code === 'throttled' && /call budget of provider p exhausted/.test(e.message));
  assert.ok(b.available() > -0.5, 'the aborted waiter returned its token');
});

test('take refuses at once when the wait would exceed maxWaitMs', async () => {
  const b = new TokenBucket({ ratePerSec: 1, burst: 1, maxWaitMs: 100 });
  b.tryTake();
  const t0 = Date.now();
  await assert.rejects(b.take(AbortSignal.timeout(10_000)), (e: unknown) => isKekError(e) && e.code === 'throttled');
  assert.ok(Date.now() - t0 < 5000, 'did not sleep to the signal');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProviderGuard } from './provider-guard';
import { RetryBudget } from './retry-budget';

test('Precondition: a retry budget needs a non-negative ratio and floor', () => {
  assert.throws(() => new RetryBudget({ ratio: -1, minPerSec: 1 }), /ratio >= 0/);
  assert.throws(() => new RetryBudget({ ratio: 0.1, minPerSec: Number.NaN }), /minPerSec >= 0/);
});

test('retries stay within ratio × calls (plus the floor) however many are asked for', () => {
  const b = new RetryBudget({ ratio: 0.1, minPerSec: 0 });
  let allowed = 0;
  for (let i = 0; i < 1000; i++) {
    b.deposit();
    // Every call fails and asks for three retries (an SDK with maxAttempts 4 in an error storm).
    for (let r = 0; r < 3; r++) if (b.tryRetry()) allowed++;
  }
  assert.ok(allowed <= 100, `${allowed} retries for 1000 calls at ratio 0.1`);
  assert.ok(allowed >= 95, `${allowed}: the budget is spent, not hoarded`);
  assert.equal(b.counters.retries, allowed);
  assert.equal(b.counters.refused, 3000 - allowed);
});

test('the floor lets a quiet provider retry now and then', async () => {
  const b = new RetryBudget({ ratio: 0, minPerSec: 20 });
  while (b.tryRetry());
  assert.equal(b.tryRetry(), false);
  await new Promise((r) => setTimeout(r, 120)); // >= 2 retries at 20/s
  assert.equal(b.tryRetry(), true);
});

test('a guard allows a retry only within the retry budget AND the call budget, and never while open or isolated', async () => {
  const g = new ProviderGuard('p', { budget: { ratePerSec: 0.1, burst: 3 }, retryBudget: { ratio: 1, minPerSec: 0 } });
  await g.call(() => Promise.resolve('ok'), AbortSignal.timeout(1000)); // 1 call token, 1 retry earned
  assert.equal(g.mayRetry(), true, 'a retry earned, a call token left');
  assert.equal(g.mayRetry(), false, 'no retry earned');
  await g.call(() => Promise.resolve('ok'), AbortSignal.timeout(1000)); // the last call token, 1 retry earned
  assert.equal(g.mayRetry(), false, 'a retry earned, but the call budget has no token: a retry is a call too');
  g.isolate();
  assert.equal(g.mayRetry(), false);
  g.shutdown();
});

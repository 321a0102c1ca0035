import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KekError, isKekError } from '@kekbroker/core';
import { ProviderGuard, type GuardTransition } from './provider-guard';

const sig = (): AbortSignal => AbortSignal.timeout(5000);
const fail = (code: ConstructorParameters<typeof KekError>[0]) => () => Promise.reject(new KekError(code, `${code} from fake`));
const ok = () => Promise.resolve('ok');

function guard(): { g: ProviderGuard; transitions: GuardTransition[] } {
  const g = new ProviderGuard('p', { breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, halfOpenAfterMs: 150 } });
  const transitions: GuardTransition[] = [];
  g.on('transition', (t: GuardTransition) => transitions.push(t));
  return { g, transitions };
}

test('errors that say nothing about availability never open the breaker', async () => {
  const { g } = guard();
  for (const code of ['not-found', 'permission-denied', 'corrupt', 'invalid-input'] as const) {
    for (let i = 0; i < 5; i++) await assert.rejects(g.call(fail(code), sig()), (e: unknown) => isKekError(e) && e.code === code);
  }
  assert.equal(g.state, 'closed');
  g.shutdown();
});

test('one failure alone does not open it; a failing window does, then a half-open trial closes it', async () => {
  const { g, transitions } = guard();
  await assert.rejects(g.call(fail('throttled'), sig()));
  assert.equal(g.state, 'closed', 'below volume threshold');
  for (let i = 0; i < 4; i++) await assert.rejects(g.call(fail('unavailable'), sig()));
  assert.equal(g.state, 'open');
  assert.equal(g.healthy, false);
  let ran = false;
  await assert.rejects(g.call(async () => { ran = true; }, sig()), (e: unknown) => isKekError(e) && e.code === 'unavailable' && /circuit breaker is open; last error: unavailable/.test(e.message));
  assert.equal(ran, false, 'an open breaker fails fast, without calling the provider');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(g.state, 'half-open');
  assert.equal(await g.call(ok, sig()), 'ok');
  assert.equal(g.state, 'closed');
  assert.deepEqual(transitions.map((t) => t.to), ['open', 'half-open', 'closed']);
  assert.match(transitions[0]!.reason, /unavailable/);
  g.shutdown();
});

test('a failed half-open trial re-opens the breaker', async () => {
  const { g } = guard();
  for (let i = 0; i < 4; i++) await assert.rejects(g.call(fail('timeout'), sig()));
  await new Promise((r) => setTimeout(r, 200));
  await assert.rejects(g.call(fail('timeout'), sig()));
  assert.equal(g.state, 'open');
  g.shutdown();
});

test('a provider that returns bad keys is counted against its breaker', async () => {
  const { g } = guard();
  for (let i = 0; i < 5; i++) g.reportBadAnswer('returned a key that fails payload authentication');
  await new Promise((r) => setImmediate(r));
  assert.equal(g.state, 'open');
  assert.match(g.status().lastError, /fails payload authentication/);
  g.shutdown();
});

test('isolation stops all traffic until restore', async () => {
  const { g } = guard();
  assert.equal(g.isolate(), true);
  await assert.rejects(g.call(ok, sig()), /isolated by an operator/);
  assert.equal(g.healthy, false);
  assert.equal(g.restore(), true);
  assert.equal(await g.call(ok, sig()), 'ok');
  g.shutdown();
});

test('the call budget makes calls wait, and fail throttled past the deadline, without opening the breaker', async () => {
  const g = new ProviderGuard('p', { budget: { ratePerSec: 5, burst: 2 }, breaker: { volumeThreshold: 1 } });
  let calls = 0;
  const counted = async () => { calls++; };
  await g.call(counted, sig());
  await g.call(counted, sig());
  await assert.rejects(g.call(counted, AbortSignal.timeout(30)), (e: unknown) => isKekError(e) && e.code === 'throttled');
  assert.equal(calls, 2);
  assert.equal(g.state, 'closed', 'our own budget is not the provider failing');
  await g.call(counted, sig()); // waits ~200 ms for a token
  assert.equal(calls, 3);
  g.shutdown();
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { versionOfRef } from './versions';
import { localTokenBuckets } from './limiter';

test('versions come from local and GCP refs only', () => {
  assert.equal(versionOfRef('local:0123456789abcdef:v7'), 7);
  assert.equal(versionOfRef('projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/12@2026-11-22T19:00:00.123456789Z'), 12);
  assert.equal(versionOfRef('arn:aws:kms:eu-west-1:111122223333:key/abc#material'), undefined);
  assert.equal(versionOfRef('vault.azure.net/keys/k/0123456789abcdef0123456789abcdef'), undefined);
  assert.equal(versionOfRef('local:0123456789abcdef:v0'), undefined);
});

test('token buckets refill per tenant', () => {
  let now = 0;
  const take = localTokenBuckets({ ratePerSecond: 10, burst: 2, now: () => now });
  assert.deepEqual([take('a'), take('a'), take('a'), take('b')], [true, true, false, true]);
  now += 100; // one token back after 100 ms at 10/s
  assert.deepEqual([take('a'), take('a')], [true, false]);
  assert.equal(localTokenBuckets({ ratePerSecond: 0, burst: 1 })('a'), true);
});

test('per-tenant overrides', () => {
  const take = localTokenBuckets({ ratePerSecond: 0, burst: 1, now: () => 0 }, { slow: { ratePerSecond: 1, burst: 1 } });
  assert.deepEqual([take('slow'), take('slow'), take('fast'), take('fast')], [true, false, true, true]);
});

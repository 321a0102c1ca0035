import assert from 'node:assert/strict';
import { test } from 'node:test';
import { boundedSignal, remainingMs } from './deadline';

test('a bounded signal remembers its deadline, and a child never outlives its parent', () => {
  const parent = boundedSignal(1000);
  const left = remainingMs(parent);
  assert.ok(left > 0 && left <= 1000);
  const child = boundedSignal(60_000, parent);
  assert.ok(remainingMs(child) <= 1000, 'capped by the parent');
  assert.equal(remainingMs(AbortSignal.timeout(10), 42), 42, 'foreign signals get the fallback');
  const c = new AbortController();
  c.abort();
  assert.equal(remainingMs(c.signal, 42), 0, 'a fired signal has no time left');
});

test('a child whose budget outlasts its parent is the parent itself (no second timer), and fires with it', () => {
  const c = new AbortController();
  const parent = boundedSignal(1000, c.signal);
  assert.equal(boundedSignal(60_000, parent), parent);
  const shorter = boundedSignal(10, parent);
  assert.notEqual(shorter, parent, 'a shorter budget gets its own deadline');
  c.abort();
  assert.ok(parent.aborted && shorter.aborted);
});

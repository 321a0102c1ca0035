import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VersionCache } from './version-cache';

describe('VersionCache', () => {
  it('loads once per version, also for concurrent callers', async () => {
    const c = new VersionCache<string>(4);
    let loads = 0;
    const load = async (): Promise<string> => {
      loads++;
      return 'entry';
    };
    assert.deepEqual(await Promise.all([c.get('a', load), c.get('a', load), c.get('a', load)]), ['entry', 'entry', 'entry']);
    await c.get('a', load);
    assert.equal(loads, 1);
  });

  it('forgets failed loads', async () => {
    const c = new VersionCache<string>(4);
    await assert.rejects(c.get('a', async () => Promise.reject(new Error('503'))));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(c.size, 0);
    assert.equal(await c.get('a', async () => 'ok'), 'ok');
  });

  it('evicts the least recently used beyond capacity', async () => {
    const c = new VersionCache<string>(2);
    let loads = 0;
    const load = async (): Promise<string> => String(++loads);
    await c.get('a', load);
    await c.get('b', load);
    await c.get('a', load); // a is now the most recent
    await c.get('c', load); // evicts b
    assert.equal(c.size, 2);
    assert.equal(await c.get('a', load), '1');
    assert.equal(await c.get('b', load), '4', 'b was evicted and loads again');
  });
});

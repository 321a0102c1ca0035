/**
 * RedisHealth.run against a real redis-server: a timeout means Redis was slow, not that this process was busy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startRedis, type RedisServer } from '@kekbroker/testkit';
import { RedisHealth, createRedisClient, type RedisClient, type RedisConfig } from './redis-client';

const TIMEOUT_MS = 100;

/** Hold the event loop, as a CPU-bound burst does: nothing else in this process runs meanwhile. */
function blockLoop(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // spin
  }
}

describe('RedisHealth.run on a real redis-server', () => {
  let redis: RedisServer;
  let client: RedisClient;
  before(async () => {
    redis = await startRedis();
    const cfg: RedisConfig = { mode: 'standalone', nodes: [redis.address], db: 0, keyPrefix: 'kb:', commandTimeoutMs: TIMEOUT_MS, connectTimeoutMs: 1000 };
    client = await createRedisClient(cfg);
    if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
  });
  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it('an answer that arrived while the event loop was blocked past the timeout is a success', async () => {
    const health = new RedisHealth();
    const answer = health.run(TIMEOUT_MS, () => client.ping());
    // Redis answers within a millisecond; this process does not read it until the loop turns, and by then the
    // timeout is three times overdue.
    blockLoop(TIMEOUT_MS * 3);
    assert.equal(await answer, 'PONG');
    assert.equal(health.failures, 0);
    assert.equal(health.up, true, 'Redis stays in the request path');
  });

  it('a hung Redis (SIGSTOP) still fails after the timeout, and takes Redis out of the request path', async () => {
    const health = new RedisHealth();
    redis.signal('SIGSTOP');
    try {
      // Our error, not ioredis' later backstop ("Command timed out").
      await assert.rejects(health.run(TIMEOUT_MS, () => client.ping()), new RegExp(`^Error: redis command timed out after ${TIMEOUT_MS} ms$`));
      assert.equal(health.up, false);
      assert.match(health.lastError, /timed out/);
    } finally {
      redis.signal('SIGCONT');
    }
  });
});

/**
 * The fleet's pub/sub, on one subscriber connection per replica:
 *  - invalidations (flush a keyring or a tenant, revoke a generation, a sealing-key rotation): every replica
 *    applies them within a round trip; revocations are also kept in a Redis set so a replica started later
 *    (or one that missed the message while disconnected) learns them on its next sync;
 *  - flight notifications ("the L2 entry for cache key X is written"), which wake waiters of the fleet-wide
 *    single-flight at once instead of at their next poll.
 */
import type { Invalidation } from '@kekbroker/cache';
import type { RedisKeys } from './keys';
import type { RedisClient, RedisHealth } from './redis-client';

/** `keyring`: its key versions or lifecycle changed (rotation, retirement): re-read it now, not at the next refresh. */
export type BusMessage = ({ type: 'invalidate' } & Invalidation) | { type: 'sealing'; keyring: string } | { type: 'keyring'; keyring: string };

export class FleetBus {
  private readonly waiters = new Map<string, Set<() => void>>();
  private handler: (m: BusMessage) => void = () => undefined;

  constructor(
    private readonly pub: RedisClient,
    private readonly sub: RedisClient,
    private readonly keys: RedisKeys,
    private readonly health: RedisHealth,
    private readonly commandTimeoutMs: number,
  ) {}

  async start(onMessage: (m: BusMessage) => void): Promise<void> {
    this.handler = onMessage;
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === this.keys.flightChannel) {
        const set = this.waiters.get(message);
        if (set) for (const wake of set) wake();
      } else if (channel === this.keys.invalidateChannel) {
        try {
          this.handler(JSON.parse(message) as BusMessage);
        } catch {
          /* a malformed message from another (newer?) version: ignore it */
        }
      }
    });
    // Not awaited to completion: with Redis down at start, the subscriber subscribes once it connects.
    void this.sub.subscribe(this.keys.invalidateChannel, this.keys.flightChannel).catch(() => undefined);
  }

  /** Publish to every replica (including this one, through Redis); also remember revocations. */
  async publish(m: BusMessage): Promise<void> {
    if (m.type === 'invalidate' && m.revoke && m.generation) {
      await this.health.run(this.commandTimeoutMs, () => this.pub.sadd(this.keys.revoked, `${m.keyring}/${m.generation}`));
    }
    await this.health.run(this.commandTimeoutMs, () => this.pub.publish(this.keys.invalidateChannel, JSON.stringify(m)));
  }

  /** Revoked `keyring/generation` pairs recorded in Redis. */
  async revoked(): Promise<string[]> {
    return this.health.run(this.commandTimeoutMs, () => this.pub.smembers(this.keys.revoked));
  }

  notifyFilled(cacheKey: string): void {
    void this.health.run(this.commandTimeoutMs, () => this.pub.publish(this.keys.flightChannel, cacheKey)).catch(() => undefined);
  }

  /** Resolve when `cacheKey` is announced, after `ms`, or when `signal` aborts, whichever is first. */
  waitFilled(cacheKey: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(cacheKey);
      if (!set) this.waiters.set(cacheKey, (set = new Set()));
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        set.delete(done);
        if (set.size === 0) this.waiters.delete(cacheKey);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      set.add(done);
    });
  }
}

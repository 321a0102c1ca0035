/**
 * A token bucket: `ratePerSec` tokens refill continuously up to `burst`. Used for per-provider call budgets
 * (stay under a cloud's quota through a restart storm) and per-tenant API rate limits.
 *
 * `take()` reserves its token at once and sleeps until the refill has paid for it, so waiters are served in
 * arrival order without a queue; a waiter whose signal fires gives its token back.
 */
import { KekError } from '@kekbroker/core';

export interface TokenBucketOptions {
  ratePerSec: number;
  burst: number;
  /** Longest `take()` will wait before failing as throttled even if the signal allows more. Default 10 s. */
  maxWaitMs?: number;
  /** Used in error messages, e.g. "provider aws-prod call budget". */
  name?: string;
}

export class TokenBucket {
  readonly ratePerSec: number;
  readonly burst: number;
  private readonly maxWaitMs: number;
  private readonly name: string;
  /** May go negative: that many tokens are promised to sleeping waiters. */
  private tokens: number;
  private last = performance.now();

  constructor(opts: TokenBucketOptions) {
    if (!(opts.ratePerSec > 0) || !(opts.burst >= 1)) throw new Error('token bucket needs ratePerSec > 0 and burst >= 1');
    this.ratePerSec = opts.ratePerSec;
    this.burst = opts.burst;
    this.maxWaitMs = opts.maxWaitMs ?? 10_000;
    this.name = opts.name ?? 'rate limit';
    this.tokens = opts.burst;
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSec);
    this.last = now;
  }

  /** Take `n` tokens if they are there now; never waits. */
  tryTake(n = 1): boolean {
    this.refill();
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Tokens available now (negative while waiters hold reservations). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  /**
   * Take one token, waiting for the refill while `signal` allows. Fails as `throttled` when the wait would
   * exceed maxWaitMs or the signal fires first (the reserved token is returned).
   */
  async take(signal?: AbortSignal, n = 1): Promise<void> {
    this.refill();
    this.tokens -= n;
    if (this.tokens >= 0) return;
    const waitMs = (-this.tokens / this.ratePerSec) * 1000;
    if (waitMs > this.maxWaitMs || signal?.aborted) {
      this.tokens += n;
      throw new KekError('throttled', `${this.name} exhausted (${this.ratePerSec}/s, burst ${this.burst}); retry later`);
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        this.tokens += n;
        reject(new KekError('throttled', `${this.name} exhausted (${this.ratePerSec}/s, burst ${this.burst}): no call slot before the deadline`));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.ceil(waitMs));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

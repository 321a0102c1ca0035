/**
 * A retry budget: retries to one provider stay within a fraction of its calls, whoever makes them (the
 * provider SDK's own retry loop or ours). Each first attempt deposits `ratio` of a retry; each retry
 * withdraws one; a small floor (`minPerSec`) lets a quiet provider still retry now and then. Without it a
 * throttling or error storm multiplies every call by the SDK's attempts, exactly when the cloud is least able
 * to take them (the retry-storm pattern; gRPC's retryThrottling and Finagle's RetryBudget work the same way).
 */
export interface RetryBudgetOptions {
  /** Retries allowed per first attempt, e.g. 0.1 = at most one retry per ten calls. */
  ratio: number;
  /** Retries allowed per second regardless of traffic (so a lone call can still retry a reset connection). */
  minPerSec: number;
}

export const DEFAULT_RETRY_BUDGET: Readonly<RetryBudgetOptions> = { ratio: 0.1, minPerSec: 1 };

export class RetryBudget {
  readonly ratio: number;
  readonly minPerSec: number;
  /** Most retries that can be saved up (a burst of retries after a quiet spell). */
  private readonly cap: number;
  private balance: number;
  private last = performance.now();
  /** Since start, for metrics and tests. */
  readonly counters = { calls: 0, retries: 0, refused: 0 };

  constructor(opts: RetryBudgetOptions = DEFAULT_RETRY_BUDGET) {
    if (!(opts.ratio >= 0) || !(opts.minPerSec >= 0)) throw new Error('retry budget needs ratio >= 0 and minPerSec >= 0');
    this.ratio = opts.ratio;
    this.minPerSec = opts.minPerSec;
    this.cap = Math.max(1, 10 * opts.minPerSec, 100 * opts.ratio);
    this.balance = Math.min(this.cap, opts.minPerSec);
  }

  private refill(): void {
    const now = performance.now();
    this.balance = Math.min(this.cap, this.balance + ((now - this.last) / 1000) * this.minPerSec);
    this.last = now;
  }

  /** A first attempt was made: it earns `ratio` of a retry. */
  deposit(): void {
    this.counters.calls++;
    this.refill();
    this.balance = Math.min(this.cap, this.balance + this.ratio);
  }

  /** May one retry be made now? Withdraws it if so. */
  tryRetry(): boolean {
    this.refill();
    if (this.balance < 1) {
      this.counters.refused++;
      return false;
    }
    this.balance -= 1;
    this.counters.retries++;
    return true;
  }
}

/**
 * Everything that stands between a keyring and one provider: an operator's isolation switch, a call budget
 * (token bucket: stay under the cloud's quota through restart storms and retry loops), and a circuit breaker
 * (opossum) fed only by the errors that say the provider is unwell (unavailable, timeout, throttled, internal).
 *
 * One guard per provider, shared by every keyring that uses it: the breaker's view of a cloud is the same for
 * all keyrings, and the budget is the cloud's, not a keyring's.
 */
import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { KekError, isKekError, toKekError } from '@kekbroker/core';
import { TokenBucket } from './token-bucket';
import { DEFAULT_RETRY_BUDGET, RetryBudget, type RetryBudgetOptions } from './retry-budget';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Open when more than this % of calls in the rolling window failed (counting errors only). */
  errorThresholdPercentage: number;
  /** ... and at least this many calls were made in the window (one failure alone never opens it). */
  volumeThreshold: number;
  /** Length of the rolling window. */
  rollingWindowMs: number;
  /** Buckets in the rolling window. */
  rollingBuckets: number;
  /** After this long open, let one trial call through (half-open); its result closes or re-opens. */
  halfOpenAfterMs: number;
}

export const DEFAULT_BREAKER: Readonly<BreakerOptions> = {
  errorThresholdPercentage: 50,
  volumeThreshold: 5,
  rollingWindowMs: 10_000,
  rollingBuckets: 10,
  halfOpenAfterMs: 5_000,
};

export interface BudgetOptions {
  ratePerSec: number;
  burst: number;
}

export interface GuardOptions {
  breaker?: Partial<BreakerOptions>;
  /** Call budget; no budget when absent. */
  budget?: BudgetOptions;
  /** Retries (the SDK's and ours) as a share of calls; DEFAULT_RETRY_BUDGET when absent. */
  retryBudget?: RetryBudgetOptions;
  /** Injected clock for tests; Date.now by default. */
  now?: () => number;
}

export interface GuardTransition {
  provider: string;
  from: BreakerState;
  to: BreakerState;
  /** The last counted failure, public text (KekError messages carry no key material). */
  reason: string;
}

export interface GuardStatus {
  state: BreakerState;
  isolated: boolean;
  /** When the breaker last changed state (ms since epoch). */
  since: number;
  /** Last counted failure ("" if none yet). */
  lastError: string;
}

/**
 * Events: 'transition' (GuardTransition), 'isolation' ({ provider, isolated }), 'failure' ({ provider, reason }:
 * every counted failure, open or not).
 */
export class ProviderGuard extends EventEmitter {
  readonly id: string;
  readonly options: Readonly<BreakerOptions>;
  readonly budget: TokenBucket | undefined;
  readonly retries: RetryBudget;
  private readonly breaker: CircuitBreaker<[() => Promise<unknown>], unknown>;
  private readonly now: () => number;
  private stateNow: BreakerState = 'closed';
  private since: number;
  private lastError = '';
  private isolatedNow = false;

  constructor(id: string, opts: GuardOptions = {}) {
    super();
    this.id = id;
    this.now = opts.now ?? Date.now;
    this.since = this.now();
    this.options = { ...DEFAULT_BREAKER, ...opts.breaker };
    this.budget = opts.budget ? new TokenBucket({ ...opts.budget, name: `call budget of provider ${id}` }) : undefined;
    this.retries = new RetryBudget(opts.retryBudget ?? DEFAULT_RETRY_BUDGET);
    this.breaker = new CircuitBreaker((fn: () => Promise<unknown>) => fn(), {
      timeout: false, // deadlines come from the caller (AbortSignal), not from the breaker
      errorThresholdPercentage: this.options.errorThresholdPercentage,
      volumeThreshold: this.options.volumeThreshold,
      rollingCountTimeout: this.options.rollingWindowMs,
      rollingCountBuckets: this.options.rollingBuckets,
      resetTimeout: this.options.halfOpenAfterMs,
      // Latency percentiles are kept per bucket and sorted on every snapshot; nothing here reads them, and they
      // cost ~5 µs per call (measured) on the cold path.
      rollingPercentilesEnabled: false,
      // A caller's bad input, a missing key or a refused grant says nothing about the provider's availability.
      errorFilter: (e: unknown) => !toKekError(e).countsAgainstBreaker,
    });
    this.breaker.on('failure', (e: unknown) => {
      const err = toKekError(e);
      this.lastError = `${err.code}: ${err.message}`;
      this.emit('failure', { provider: this.id, reason: this.lastError });
    });
    this.breaker.on('open', () => this.move('open'));
    this.breaker.on('halfOpen', () => this.move('half-open'));
    this.breaker.on('close', () => this.move('closed'));
  }

  private move(to: BreakerState): void {
    const from = this.stateNow;
    if (from === to) return;
    this.stateNow = to;
    this.since = this.now();
    this.emit('transition', { provider: this.id, from, to, reason: this.lastError } satisfies GuardTransition);
  }

  get state(): BreakerState {
    return this.stateNow;
  }

  get isolated(): boolean {
    return this.isolatedNow;
  }

  /** Can this provider take traffic now (breaker closed, not isolated)? Half-open takes only trial calls. */
  get healthy(): boolean {
    return this.stateNow === 'closed' && !this.isolatedNow;
  }

  /** How long the breaker has been in its current state. */
  stateAgeMs(): number {
    return this.now() - this.since;
  }

  status(): GuardStatus {
    return { state: this.stateNow, isolated: this.isolatedNow, since: this.since, lastError: this.lastError };
  }

  /**
   * Run one provider call: refused at once when isolated or when the breaker is open; otherwise waits for a
   * budget token within `signal` (or fails `throttled`), then runs `fn` and feeds the breaker with its outcome.
   */
  async call<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    if (this.isolatedNow) throw new KekError('unavailable', `provider ${this.id} is isolated by an operator (POST /v1/admin/providers/${this.id}/restore to undo)`, { provider: this.id });
    if (this.stateNow === 'open') throw this.openError();
    // A token at hand is taken without an await (one event-loop turn less per provider call).
    if (this.budget && !this.budget.tryTake()) await this.budget.take(signal);
    this.retries.deposit();
    try {
      return (await this.breaker.fire(fn)) as T;
    } catch (e) {
      if ((e as { code?: unknown }).code === 'EOPENBREAKER') throw this.openError();
      throw isKekError(e) ? e : toKekError(e);
    }
  }

  /**
   * Asked by the provider's retry loop (the SDK's or its own) before every retry: yes only if the retry budget
   * has one left AND the call budget has a token now (a retry is one more call against the cloud's quota; it
   * never waits for one). A refused retry is not made: the caller gets the attempt's own error. Throttling is
   * never retried inside a call (the providers refuse it before asking), so a throttling storm costs one call
   * per request at most.
   */
  mayRetry(): boolean {
    if (this.isolatedNow || this.stateNow === 'open') return false;
    if (this.budget && this.budget.available() < 1) {
      this.retries.counters.refused++;
      return false;
    }
    if (!this.retries.tryRetry()) return false;
    if (this.budget && !this.budget.tryTake()) return false;
    return true;
  }

  private openError(): KekError {
    const what = this.stateNow === 'open' ? 'open' : 'half-open (a trial call is in flight)';
    return new KekError('unavailable', `provider ${this.id} circuit breaker is ${what}; last error: ${this.lastError || 'none'}`, { provider: this.id });
  }

  /**
   * Count a failure the provider's own answer did not reveal: it returned a key that fails payload
   * authentication, or a wrap that does not unwrap to what it was given. Such a provider is lying.
   */
  reportBadAnswer(reason: string): void {
    this.breaker.fire(() => Promise.reject(new KekError('internal', reason, { provider: this.id }))).catch(() => undefined);
  }

  /** Operator switch: no traffic at all to this provider until restore(). */
  isolate(): boolean {
    if (this.isolatedNow) return false;
    this.isolatedNow = true;
    this.emit('isolation', { provider: this.id, isolated: true });
    return true;
  }

  restore(): boolean {
    if (!this.isolatedNow) return false;
    this.isolatedNow = false;
    this.emit('isolation', { provider: this.id, isolated: false });
    return true;
  }

  /** Stop the breaker's timers (the broker is shutting down). */
  shutdown(): void {
    this.breaker.shutdown();
  }
}

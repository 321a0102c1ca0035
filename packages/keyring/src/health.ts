/**
 * Per-provider health, as a keyring sees it. Two different things go wrong with a provider, and they call
 * for opposite reactions:
 *  - DOWN: the provider's circuit breaker is open (unavailable, timeout, throttled, internal errors over a
 *    rolling window). The keyring fails over automatically. One failed call never flips this: the breaker does.
 *  - MISCONFIGURED: the provider answers, but refuses our key (not-found, permission-denied: a disabled or
 *    deleted key, a missing IAM grant). A disabled key may be a deliberate kill switch, so the keyring does
 *    not fail over on its own; it reports the problem, naming the key and the fix.
 */
import type { ErrorCode, KekError } from '@kekbroker/core';
import type { BreakerState, ProviderGuard } from '@kekbroker/resilience';

export interface ProviderHealth {
  up: boolean;
  /** Public reason ("ok", or what is wrong). */
  reason: string;
  lastCode: ErrorCode | undefined;
  changedAt: number;
  breaker: BreakerState;
  isolated: boolean;
  /** Set while the provider refuses our key (not-found / permission-denied on its current key). */
  misconfigured: string | undefined;
}

interface Problem {
  code: ErrorCode;
  message: string;
  at: number;
}

export class MisconfigBook {
  private readonly problems = new Map<string, Problem>();

  /** Record the outcome of a call on the provider's CURRENT key (wrap, probe, describe). True on a change. */
  record(provider: string, err: KekError | undefined): boolean {
    const had = this.problems.has(provider);
    if (!err) return had && this.problems.delete(provider);
    if (err.code !== 'not-found' && err.code !== 'permission-denied') return false;
    this.problems.set(provider, { code: err.code, message: err.message, at: Date.now() });
    return !had;
  }

  get(provider: string): Problem | undefined {
    return this.problems.get(provider);
  }
}

export function providerHealth(guard: ProviderGuard, problem: Problem | undefined): ProviderHealth {
  const g = guard.status();
  const misconfigured = problem ? `${problem.code}: ${problem.message}` : undefined;
  let reason = 'ok';
  if (g.isolated) reason = 'isolated by an operator';
  else if (g.state !== 'closed') reason = `circuit breaker ${g.state}; last error ${g.lastError || 'none'}`;
  else if (misconfigured) reason = misconfigured;
  return {
    up: g.state === 'closed' && !g.isolated,
    reason,
    lastCode: problem?.code,
    changedAt: problem && problem.at > g.since ? problem.at : g.since,
    breaker: g.state,
    isolated: g.isolated,
    misconfigured,
  };
}

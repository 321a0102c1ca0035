/**
 * Our own small retry loop (the SDK's is switched off, see sdk-client.ts). It retries only what is
 * transient *and* safe to repeat: UNAVAILABLE (the connection failed or the server shed the call),
 * DEADLINE_EXCEEDED of one attempt while the caller still has time, and integrity failures. Never
 * RESOURCE_EXHAUSTED: Cloud KMS quotas are per minute, a retry inside a ~2 s deadline only burns quota,
 * and the keyring's breaker and other providers are the better answer.
 *
 * When the caller's signal fires during a backoff pause we report the last real failure (an outage is
 * "unavailable", not "timeout"); when it fires during an attempt the attempt is cancelled and that is
 * a timeout.
 */
import { isAbortError, type RetryGate } from '@kekbroker/core';
import { IntegrityError } from './transport-errors';

export interface RetryPolicy {
  /** Attempts in all, including the first (1 = no retry). */
  maxAttempts: number;
  /** First pause; doubles per retry, with jitter in [75%, 100%] (a floor, so pauses span a reconnect backoff). */
  baseDelayMs: number;
  /** The broker's retry budget (KekProvider.setRetryGate): asked before every retry; false = no retry. */
  gate?: RetryGate;
}

const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;

export function isTransient(e: unknown, signal: AbortSignal): boolean {
  if (e instanceof IntegrityError) return true;
  if (signal.aborted || isAbortError(e)) return false;
  const code = (e as { code?: unknown } | null)?.code;
  return code === UNAVAILABLE || code === DEADLINE_EXCEEDED;
}

export async function withRetries<T>(policy: RetryPolicy, signal: AbortSignal, attempt: (n: number) => Promise<T>): Promise<T> {
  let last: unknown;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (e) {
      last = e;
      if (n >= policy.maxAttempts || !isTransient(e, signal) || (policy.gate && !policy.gate())) throw e;
    }
    const ms = policy.baseDelayMs * 2 ** (n - 1) * (0.75 + Math.random() / 4);
    if (!(await pause(ms, signal))) throw last;
  }
}

/** Resolves false if the signal fires first (and leaves no timer behind). */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

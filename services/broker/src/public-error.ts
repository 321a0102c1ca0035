/**
 * What a caller (a shim, an API client) is told when a request fails: the stable error code, a short
 * reason, and a correlation id that finds the full error in the broker log. Provider errors carry
 * details a tenant has no business seeing (AWS key ARNs and account ids, Azure key versions, keystore
 * paths), and availability errors describe the broker's insides; those stay in the log and the admin API.
 * Errors about the caller's own request (bad input, unknown identity, a keyring it may not use, a
 * tampered ciphertext) keep their precise message: it names nothing but what the caller sent.
 */
import { randomBytes } from 'node:crypto';
import { KekError, type ErrorCode } from '@kekbroker/core';

const CALLER_FACING: ReadonlySet<ErrorCode> = new Set(['invalid-input', 'unauthenticated', 'permission-denied', 'not-found', 'corrupt']);

/** A tenant over its own rate limit: about the caller's traffic, so its message goes to the caller. */
export class TenantRateLimited extends KekError {
  constructor(message: string) {
    super('throttled', message);
  }
}

/** True when the error's own message may go to the caller. */
export function isCallerFacing(err: KekError): boolean {
  return err instanceof TenantRateLimited || (err.provider === undefined && CALLER_FACING.has(err.code));
}

function shortReason(err: KekError): string {
  const p = err.provider !== undefined ? `provider ${err.provider}` : 'a provider';
  switch (err.code) {
    case 'invalid-input': return `${p} refused the request as invalid`;
    case 'unauthenticated':
    case 'permission-denied': return `${p} refused the broker's credentials or the key is disabled`;
    case 'not-found': return `${p} does not hold the key version that wrapped this ciphertext`;
    case 'corrupt': return 'unwrap failed authentication: the ciphertext was tampered with, or wrapped for another tenant or keyring';
    case 'throttled': return `${p} is throttling requests; retry later`;
    case 'unavailable': return err.provider !== undefined ? `${p} is unavailable` : 'the keyring cannot serve right now';
    case 'timeout': return 'deadline exceeded';
    case 'internal': return 'internal error';
  }
}

export function newCorrelationId(): string {
  return randomBytes(8).toString('hex');
}

/** The error to send instead of `err`, same code, details replaced by a short reason and the correlation id. */
export function publicError(err: KekError, correlationId: string): KekError {
  return new KekError(err.code, `${shortReason(err)} (correlation id ${correlationId})`, {
    ...(err.provider !== undefined ? { provider: err.provider } : {}),
    ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
  });
}

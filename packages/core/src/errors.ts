/**
 * The closed set of errors kekbroker speaks. Every layer (providers, keyrings, the broker's gRPC and HTTP
 * adapters, the shim) classifies what goes wrong into one of these codes, and derives everything else
 * (gRPC status, HTTP status, breaker accounting, metric label) from the code through the tables below.
 *
 * Match on `code`, never on `instanceof`: duplicated package copies break `instanceof` (see style notes).
 * Messages must never contain key material; they are shown to callers and written to logs.
 */
export const ERROR_CODES = [
  'invalid-input', // the caller sent something malformed, oversized or unsupported
  'unauthenticated', // no identity, or one we do not recognise (missing token, unknown client certificate)
  'permission-denied', // identity known, operation/keyring not allowed; also a KMS refusing our credentials
  'not-found', // keyring, provider key or key version does not exist (or is disabled/destroyed)
  'corrupt', // authentication failed: tampered bytes, wrong AAD/tenant binding, wrong key
  'throttled', // a KMS or our own rate limiter asked us to slow down
  'unavailable', // a KMS or a dependency cannot be reached right now; retrying later may work
  'timeout', // the caller's deadline ran out
  'internal', // a bug or an unexpected answer; details are in the log, not in the message
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** gRPC status codes (numeric, to keep core free of a grpc dependency). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

interface CodeTraits {
  grpc: number;
  http: number;
  /** Only availability problems may open a circuit breaker; a caller's bad input must not. */
  countsAgainstBreaker: boolean;
  /** Worth retrying the same call later (possibly on another provider). */
  retryable: boolean;
}

const TRAITS: Record<ErrorCode, CodeTraits> = {
  'invalid-input': { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400, countsAgainstBreaker: false, retryable: false },
  unauthenticated: { grpc: GrpcStatus.UNAUTHENTICATED, http: 401, countsAgainstBreaker: false, retryable: false },
  'permission-denied': { grpc: GrpcStatus.PERMISSION_DENIED, http: 403, countsAgainstBreaker: false, retryable: false },
  'not-found': { grpc: GrpcStatus.NOT_FOUND, http: 404, countsAgainstBreaker: false, retryable: false },
  corrupt: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400, countsAgainstBreaker: false, retryable: false },
  throttled: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 429, countsAgainstBreaker: true, retryable: true },
  unavailable: { grpc: GrpcStatus.UNAVAILABLE, http: 503, countsAgainstBreaker: true, retryable: true },
  timeout: { grpc: GrpcStatus.DEADLINE_EXCEEDED, http: 504, countsAgainstBreaker: true, retryable: true },
  internal: { grpc: GrpcStatus.INTERNAL, http: 500, countsAgainstBreaker: true, retryable: false },
};

export interface KekErrorOptions {
  cause?: unknown;
  /** Provider id (from config) the error came from, if any. Public, safe to log. */
  provider?: string;
  /** Server-suggested wait before retrying (throttling), in milliseconds. */
  retryAfterMs?: number;
}

export class KekError extends Error {
  override readonly name = 'KekError';
  readonly code: ErrorCode;
  readonly provider: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: KekErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.provider = options.provider;
    this.retryAfterMs = options.retryAfterMs;
  }

  get grpcStatus(): number {
    return TRAITS[this.code].grpc;
  }
  get httpStatus(): number {
    return TRAITS[this.code].http;
  }
  get countsAgainstBreaker(): boolean {
    return TRAITS[this.code].countsAgainstBreaker;
  }
  get retryable(): boolean {
    return TRAITS[this.code].retryable;
  }
}

export function isKekError(e: unknown): e is KekError {
  return (
    typeof e === 'object' &&
    e !== null &&
    (e as { name?: unknown }).name === 'KekError' &&
    (ERROR_CODES as readonly string[]).includes((e as { code?: unknown }).code as string)
  );
}

export function traitsOf(code: ErrorCode): Readonly<CodeTraits> {
  return TRAITS[code];
}

/**
 * Turn anything thrown into a KekError. Unknown errors become `internal` with a generic message, so
 * that internals (and whatever an SDK put in its message) never reach a caller; log the original.
 */
export function toKekError(e: unknown, fallbackMessage = 'internal error'): KekError {
  if (isKekError(e)) return e;
  if (isAbortError(e)) return new KekError('timeout', 'deadline exceeded', { cause: e });
  return new KekError('internal', fallbackMessage, { cause: e });
}

export function isAbortError(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const name = (e as { name?: unknown }).name;
  return name === 'AbortError' || name === 'TimeoutError';
}

/** Assert a precondition; throws `invalid-input` (or the given code) with the message. */
export function needs(condition: unknown, message: string, code: ErrorCode = 'invalid-input'): asserts condition {
  if (!condition) throw new KekError(code, message);
}

/**
 * Cloud KMS failures → kekbroker's closed set of error codes. The SDK surfaces gRPC statuses as errors with
 * a numeric `code` and the server's `details` text; canonical meanings per
 * https://cloud.google.com/kms/docs/reference/rpc/google.rpc#code and the KMS error guide
 * https://cloud.google.com/kms/docs/troubleshooting (checked against the emulator with the real SDK in
 * classify-error.test.ts). Choices worth knowing:
 * - FAILED_PRECONDITION (a DISABLED / DESTROYED / PENDING version) → `not-found`, as core defines it
 *   ("does not exist, or is disabled/destroyed"): nothing the caller can fix by retrying, and not an
 *   availability problem, so it must not open a breaker. The server's text says which state it is.
 * - PERMISSION_DENIED → `permission-denied`; Cloud KMS also answers it for a key that does not exist when
 *   the caller may not see it, so the message says both.
 * - INVALID_ARGUMENT on Decrypt → `corrupt` (wrong AAD, tampered or foreign ciphertext), except the
 *   "checksum … did not match" variant, which means our request was damaged in transit → `unavailable`.
 *   On any other call it means we sent something malformed: a bug → `internal`.
 * - Response integrity failures (CRC32C, see integrity.ts) → `unavailable`: damage in transit is neither
 *   the caller's fault nor tampering with the stored blob, and repeated damage should open the breaker.
 * - UNAUTHENTICATED → `permission-denied`: the KMS refusing *our* credentials (core's definition);
 *   `unauthenticated` is reserved for our own callers.
 */
import { KekError, isAbortError, isKekError, type ErrorCode } from '@kekbroker/core';
import { ClientInitError, IntegrityError } from './transport-errors';

export type GcpOperation = 'Encrypt' | 'Decrypt' | 'GetCryptoKey' | 'GetCryptoKeyVersion' | 'CreateCryptoKeyVersion' | 'UpdateCryptoKeyPrimaryVersion';

export interface ClassifyContext {
  provider: string;
  op: GcpOperation;
  /** The resource the call named (CryptoKey or CryptoKeyVersion). */
  resource: string;
}

const STATUS_NAMES: Record<number, string> = {
  1: 'CANCELLED', 2: 'UNKNOWN', 3: 'INVALID_ARGUMENT', 4: 'DEADLINE_EXCEEDED', 5: 'NOT_FOUND', 6: 'ALREADY_EXISTS',
  7: 'PERMISSION_DENIED', 8: 'RESOURCE_EXHAUSTED', 9: 'FAILED_PRECONDITION', 10: 'ABORTED', 11: 'OUT_OF_RANGE',
  12: 'UNIMPLEMENTED', 13: 'INTERNAL', 14: 'UNAVAILABLE', 15: 'DATA_LOSS', 16: 'UNAUTHENTICATED',
};

type Rule = (c: ClassifyContext, said: string) => [ErrorCode, string];

/** One row per gRPC status; `said` is the server's own (sanitised) text. */
const BY_STATUS: Record<number, Rule> = {
  // Quota: 60,000 crypto requests/min per project and region (1,000 QPS; HSM 500 QPS) — cloud.google.com/kms/quotas
  8: (c, said) => ['throttled', `GCP KMS quota exhausted for ${c.op} on ${c.resource} (RESOURCE_EXHAUSTED: ${said}): slow down, spread load over keys/regions, or request a quota increase`],
  14: (c, said) => ['unavailable', `GCP KMS is unavailable for ${c.op} on ${c.resource} (UNAVAILABLE: ${said})`],
  13: (c, said) => ['unavailable', `GCP KMS failed internally on ${c.op} for ${c.resource} (INTERNAL: ${said}); usually transient`],
  2: (c, said) => ['unavailable', `GCP KMS call ${c.op} on ${c.resource} failed (UNKNOWN: ${said})`],
  10: (c, said) => ['unavailable', `GCP KMS aborted ${c.op} on ${c.resource} (ABORTED: ${said}); retry`],
  1: (c) => ['unavailable', `GCP KMS call ${c.op} on ${c.resource} was cancelled by the transport`],
  4: (c) => ['timeout', `GCP KMS did not answer ${c.op} on ${c.resource} within the call timeout (DEADLINE_EXCEEDED)`],
  5: (c) => ['not-found', `GCP KMS key ${c.resource} not found (NOT_FOUND): check keyName in the provider config (projects/P/locations/L/keyRings/R/cryptoKeys/K)`],
  9: (c, said) => ['not-found', `GCP KMS key ${c.resource} cannot be used (FAILED_PRECONDITION: ${said}): a DISABLED version can be re-enabled (gcloud kms keys versions enable); a DESTROYED one is gone and its wraps can only be unwrapped by another provider of the keyring`],
  7: (c, said) => ['permission-denied', `GCP KMS denied ${c.op} on ${c.resource} (PERMISSION_DENIED: ${said}): grant the broker's service account roles/cloudkms.cryptoKeyEncrypterDecrypter on the key (and the rotation permissions for rotate); GCP also says this for a key that does not exist`],
  16: (c, said) => ['permission-denied', `GCP KMS rejected the broker's credentials for ${c.op} (UNAUTHENTICATED: ${said}): check workload identity / GOOGLE_APPLICATION_CREDENTIALS / credentialsFile`],
  12: (c) => ['internal', `GCP KMS endpoint does not implement ${c.op} (UNIMPLEMENTED): is the endpoint really Cloud KMS?`],
  15: (c, said) => ['unavailable', `GCP KMS reported data loss on ${c.op} for ${c.resource} (DATA_LOSS: ${said})`],
};

/** The server's text, on one line and bounded: it goes into messages and logs, never an SDK dump. */
function sanitize(details: unknown): string {
  const s = typeof details === 'string' ? details : '';
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line || 'no details';
}

/** google.rpc.RetryInfo from the status details (gax decodes them into `statusDetails`). */
export function retryAfterMs(e: unknown): number | undefined {
  const details = (e as { statusDetails?: unknown } | null)?.statusDetails;
  if (!Array.isArray(details)) return undefined;
  for (const d of details) {
    const delay = (d as { retryDelay?: { seconds?: unknown; nanos?: unknown } } | null)?.retryDelay;
    if (!delay) continue;
    const ms = Number(String(delay.seconds ?? 0)) * 1000 + Math.floor(Number(delay.nanos ?? 0) / 1e6);
    if (Number.isFinite(ms) && ms >= 0) return ms;
  }
  return undefined;
}

export function classifyGcpError(e: unknown, c: ClassifyContext): KekError {
  if (isKekError(e)) return e;
  const opts = { provider: c.provider, cause: e };
  if (isAbortError(e)) return new KekError('timeout', `GCP KMS ${c.op} on ${c.resource} abandoned: deadline exceeded or caller cancelled`, opts);
  if (e instanceof IntegrityError) {
    return new KekError('unavailable', `GCP KMS ${c.op} on ${c.resource}: ${e.message} after retries (data damaged in transit; check proxies/network)`, opts);
  }
  if (e instanceof ClientInitError) {
    return new KekError('unavailable', `GCP KMS client could not start (${sanitize(e.message)}); check credentialsFile / GOOGLE_APPLICATION_CREDENTIALS / workload identity`, opts);
  }
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'number') return new KekError('internal', `GCP KMS ${c.op} on ${c.resource} failed unexpectedly`, opts);
  const said = sanitize((e as { details?: unknown }).details);
  if (code === 3) {
    if (/checksum/i.test(said)) return new KekError('unavailable', `GCP KMS ${c.op} on ${c.resource}: the request was damaged in transit (${said})`, opts);
    if (c.op === 'Decrypt') {
      return new KekError('corrupt', `GCP KMS could not decrypt with ${c.resource}: tampered or foreign ciphertext, or a different tenant/keyring binding`, opts);
    }
    return new KekError('internal', `GCP KMS rejected ${c.op} on ${c.resource} as invalid (INVALID_ARGUMENT: ${said})`, opts);
  }
  const rule = BY_STATUS[code];
  if (!rule) return new KekError('internal', `GCP KMS ${c.op} on ${c.resource} failed with ${STATUS_NAMES[code] ?? `status ${code}`}`, opts);
  const [kekCode, message] = rule(c, said);
  const after = kekCode === 'throttled' ? retryAfterMs(e) : undefined;
  return new KekError(kekCode, message, after === undefined ? opts : { ...opts, retryAfterMs: after });
}

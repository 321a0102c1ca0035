/**
 * The one file bound to @aws-sdk/client-kms. It builds the client from plain options and adapts the four
 * commands to `KmsApi`. Facts this relies on (research/cloud-sdks.md §1, tested against the emulator):
 * - `region` is mandatory; `endpoint` may be plain http (the emulator, a VPC endpoint through a proxy).
 * - Without `credentials` the default chain runs, ending at EC2 IMDS (169.254.169.254). Tests pass static
 *   credentials so that no metadata probe can happen.
 * - `requestTimeout` alone only logs a warning; `throwOnRequestTimeout: true` makes it a TimeoutError.
 * - Retries: the SDK's standard mode would retry throttling names (including LimitExceededException) with a
 *   1 s base backoff, and 5xx / ECONNRESET / ECONNREFUSED with 50 ms. We replace it with BudgetedRetryStrategy:
 *   throttling is never retried (the caller gets `throttled` at once and the quota is not spent twice), and a
 *   transient failure is retried only while `maxAttempts` and the broker's retry budget allow (RetryHolder).
 *   The abortSignal cuts any backoff short.
 */
import { DecryptCommand, DescribeKeyCommand, EncryptCommand, KMSClient, RotateKeyOnDemandCommand, type KMSClientConfig } from '@aws-sdk/client-kms';
import type { RetryGate } from '@kekbroker/core';
import type { KmsApi, KmsKeyInfo } from './client';
import type { CredentialsProvider } from './credentials';

export interface SdkClientOptions {
  region: string;
  /** e.g. `http://127.0.0.1:4566` for the emulator, or a VPC endpoint URL; AWS's regional endpoint when absent. */
  endpoint?: string;
  /** Static credentials; absent = the SDK's default credential chain. */
  credentials?: CredentialsProvider;
  /** Shared-config profile for the default chain. */
  profile?: string;
  /** Attempts per call, first one included. */
  maxAttempts: number;
  /** Per attempt: time for the whole HTTP exchange. */
  requestTimeoutMs: number;
  /** Per attempt: time to establish the TCP (and TLS) connection. */
  connectionTimeoutMs: number;
  /** Where the broker's retry gate is put once the provider is wired (KekProvider.setRetryGate). */
  retry?: RetryHolder;
}

/** The broker's retry gate, set after construction; absent = retries bounded by maxAttempts alone. */
export interface RetryHolder {
  gate?: RetryGate;
}

interface Token {
  getRetryCount(): number;
  getRetryDelay(): number;
}

const token = (count: number, delay: number): Token => ({ getRetryCount: () => count, getRetryDelay: () => delay });
/** First retry waits up to 50 ms (the SDK's own base for transient errors), doubling, full jitter. */
const RETRY_BASE_MS = 50;

/**
 * A smithy RetryStrategyV2 (acquireInitialRetryToken / refreshRetryTokenForRetry / recordSuccess): a thrown
 * refresh makes the SDK throw the attempt's own error, and the returned token's delay is slept (abortable).
 */
export class BudgetedRetryStrategy {
  readonly mode = 'standard';
  constructor(private readonly maxAttempts: number, private readonly holder: RetryHolder = {}) {}

  async acquireInitialRetryToken(): Promise<Token> {
    return token(0, 0);
  }

  async refreshRetryTokenForRetry(t: Token, info: { errorType?: string }): Promise<Token> {
    const retry = t.getRetryCount() + 1;
    // Only TRANSIENT (5xx, timeouts, reset/refused connections); never THROTTLING, CLIENT_ERROR or SERVER_ERROR.
    if (info.errorType !== 'TRANSIENT' || retry >= this.maxAttempts) throw new Error('not retried');
    if (this.holder.gate && !this.holder.gate()) throw new Error('retry budget exhausted');
    return token(retry, Math.floor(Math.random() * RETRY_BASE_MS * 2 ** (retry - 1)));
  }

  recordSuccess(): void {}
}

/** A thrown value for answers that lack a field KMS always sends; classified as `internal`. */
class MalformedAnswer extends Error {
  override readonly name = 'MalformedKmsAnswer';
}

function must<T>(v: T | undefined, what: string): T {
  if (v === undefined || v === null) throw new MalformedAnswer(`AWS KMS answered without ${what}`);
  return v;
}

export function createSdkKmsApi(o: SdkClientOptions): KmsApi {
  const base: KMSClientConfig = {
    region: o.region,
    ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
    ...(o.credentials !== undefined ? { credentials: o.credentials } : {}),
    ...(o.profile !== undefined ? { profile: o.profile } : {}),
    requestHandler: { requestTimeout: o.requestTimeoutMs, connectionTimeout: o.connectionTimeoutMs, throwOnRequestTimeout: true },
  };
  const data = new KMSClient({ ...base, maxAttempts: o.maxAttempts, retryStrategy: new BudgetedRetryStrategy(o.maxAttempts, o.retry) });
  // RotateKeyOnDemand must not be retried: at the lifetime limit KMS answers LimitExceededException,
  // which the SDK treats as throttling and would retry with a 1 s backoff for nothing. A rotation that
  // failed transiently is simply asked for again by its caller.
  let control: KMSClient | undefined;

  return {
    async encrypt(keyId, plaintext, context, signal) {
      const out = await data.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: context }), { abortSignal: signal });
      return { ciphertext: must(out.CiphertextBlob, 'CiphertextBlob'), keyArn: must(out.KeyId, 'KeyId') };
    },
    async decrypt(keyId, ciphertext, context, signal) {
      const out = await data.send(new DecryptCommand({ KeyId: keyId, CiphertextBlob: ciphertext, EncryptionContext: context }), { abortSignal: signal });
      return { plaintext: must(out.Plaintext, 'Plaintext'), keyArn: must(out.KeyId, 'KeyId'), keyMaterialId: out.KeyMaterialId };
    },
    async describeKey(keyId, signal): Promise<KmsKeyInfo> {
      const out = await data.send(new DescribeKeyCommand({ KeyId: keyId }), { abortSignal: signal });
      const m = must(out.KeyMetadata, 'KeyMetadata');
      return {
        arn: must(m.Arn, 'KeyMetadata.Arn'),
        keyState: m.KeyState ?? 'Unknown',
        enabled: m.Enabled === true,
        keyMaterialId: m.CurrentKeyMaterialId,
        keyUsage: m.KeyUsage,
        keySpec: m.KeySpec ?? m.CustomerMasterKeySpec,
      };
    },
    async rotateKeyOnDemand(keyId, signal) {
      control ??= new KMSClient({ ...base, maxAttempts: 1 });
      await control.send(new RotateKeyOnDemandCommand({ KeyId: keyId }), { abortSignal: signal });
    },
    close() {
      data.destroy();
      control?.destroy();
    },
  };
}

/**
 * AWS KMS / SDK errors → the closed KekError set. SDK service errors carry the KMS exception name in
 * `name` (resolved from the wire `__type`), `$metadata.httpStatusCode` and `$metadata.requestId`;
 * transport errors are Node errors (`code` ECONNRESET…), which the node-http-handler renames to
 * `TimeoutError` for ECONNRESET/EPIPE/ETIMEDOUT — so the errno is checked before the name.
 *
 * Messages say what an operator should do. They name the key (an ARN is public) and the AWS request id
 * (to find the call in CloudTrail), never the SDK's own message or anything from the request body.
 * Exception semantics cite the KMS API reference (client-kms 3.1164.0 `errors.d.ts` doc comments).
 */
import { KekError, isKekError, type ErrorCode } from '@kekbroker/core';

export type AwsOp = 'wrap' | 'unwrap' | 'rotate' | 'describe' | 'probe';

export interface ClassifyContext {
  provider: string;
  /** The key as the operator knows it: the resolved ARN when we have it, else the configured KeyId. */
  key: string;
  op: AwsOp;
  /** The signal the call ran under: if it fired, whatever the SDK threw is a timeout. */
  signal?: AbortSignal;
}

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: number; requestId?: string };
  $response?: { headers?: Record<string, string | undefined> };
}

type Rule = (c: ClassifyContext) => [ErrorCode, string];

const OP_ACTION: Record<AwsOp, string> = {
  wrap: 'kms:Encrypt',
  unwrap: 'kms:Decrypt',
  rotate: 'kms:RotateKeyOnDemand',
  describe: 'kms:DescribeKey',
  probe: 'kms:DescribeKey',
};

const credentialsRejected: Rule = (c) => [
  'permission-denied',
  `AWS rejected the credentials provider ${c.provider} used for key ${c.key} (invalid, expired, or for another partition): check the role (IRSA / Pod Identity / instance profile) or the static credentials it is configured with`,
];

/** Keyed by the KMS exception name. */
const BY_NAME: Readonly<Record<string, Rule>> = {
  // "The request was denied due to request throttling" — account/Region request quota or a hot key.
  ThrottlingException: (c) => ['throttled', `AWS KMS is throttling calls on key ${c.key}: the account's request quota for this Region is exhausted (see docs/providers/aws-kms.md, quotas)`],
  // "a length constraint or quota was exceeded". On the data path that is a request quota; for
  // RotateKeyOnDemand it is the per-key lifetime limit of on-demand rotations (25, not adjustable),
  // which no retry will cure.
  LimitExceededException: (c) =>
    c.op === 'rotate'
      ? ['permission-denied', `AWS KMS refused to rotate key ${c.key}: the key has used up its on-demand rotations (25 per key, for its lifetime; the quota cannot be raised). Create a new KMS key and point providers.${c.provider}.keyId (or its alias) at it, or let AWS automatic rotation rotate this key`]
      : ['throttled', `AWS KMS quota exceeded on key ${c.key}: reduce the call rate or ask for a quota increase`],
  // "The request was rejected because an internal exception occurred. The request can be retried."
  KMSInternalException: (c) => ['unavailable', `AWS KMS had an internal error serving key ${c.key}; retrying later may work`],
  // "The system timed out while trying to fulfill the request. You can retry the request."
  DependencyTimeoutException: (c) => ['unavailable', `AWS KMS timed out internally serving key ${c.key}; retrying later may work`],
  // "the specified KMS key cannot be used right now" (custom key store disconnected, HSM busy).
  KeyUnavailableException: (c) => ['unavailable', `AWS KMS key ${c.key} is temporarily unavailable (e.g. its custom key store is disconnected)`],
  // Rotation in progress, or an automatic rotation starts within 20 minutes.
  ConflictException: (c) => ['unavailable', `AWS KMS cannot rotate key ${c.key} now: a rotation is in progress or an automatic rotation is due within 20 minutes; try again later`],
  // "the specified ciphertext, or additional authenticated data … has been corrupted, is missing, or is otherwise invalid"
  InvalidCiphertextException: (c) => ['corrupt', `AWS KMS refused the wrapped key for key ${c.key}: tampered bytes or a different tenant/keyring binding (EncryptionContext)`],
  // "The KeyId in a Decrypt request … must identify the same KMS key that was used to encrypt the ciphertext"
  IncorrectKeyException: (c) => ['corrupt', `the wrapped key was not produced by AWS KMS key ${c.key}`],
  NotFoundException: (c) => ['not-found', `AWS KMS key ${c.key} does not exist in this Region and account (or the alias points nowhere): check providers.${c.provider}.keyId and region`],
  // The key exists but may not be used; enabling it (or pointing elsewhere) is the operator's call.
  DisabledException: (c) => ['permission-denied', `AWS KMS key ${c.key} is disabled: enable it (aws kms enable-key --key-id ${c.key}) or point providers.${c.provider}.keyId at an enabled key`],
  KMSInvalidStateException: (c) => ['permission-denied', `AWS KMS key ${c.key} is in a state that forbids this operation (e.g. pending deletion — cancel it with aws kms cancel-key-deletion, then enable-key): check its KeyState with aws kms describe-key`],
  AccessDeniedException: (c) => ['permission-denied', `access to AWS KMS key ${c.key} denied: the role of provider ${c.provider} needs ${OP_ACTION[c.op]} on it in the key policy or IAM policy, with the kekbroker EncryptionContext conditions (see docs/providers/aws-kms.md)`],
  UnrecognizedClientException: credentialsRejected,
  InvalidSignatureException: credentialsRejected,
  IncompleteSignature: credentialsRejected,
  InvalidClientTokenId: credentialsRejected,
  ExpiredTokenException: credentialsRejected,
  MissingAuthenticationToken: credentialsRejected,
  // The key is not a symmetric ENCRYPT_DECRYPT key.
  InvalidKeyUsageException: (c) => ['invalid-input', `AWS KMS key ${c.key} cannot wrap keys: use a symmetric encryption key (KeySpec SYMMETRIC_DEFAULT, KeyUsage ENCRYPT_DECRYPT)`],
  UnsupportedOperationException: (c) =>
    c.op === 'rotate'
      ? ['invalid-input', `AWS KMS key ${c.key} does not support on-demand rotation (asymmetric, HMAC, custom key store, or imported material without new material pending)`]
      : ['invalid-input', `AWS KMS key ${c.key} does not support this operation`],
  InvalidArnException: (c) => ['invalid-input', `${c.key} is not a valid AWS KMS key ARN: check providers.${c.provider}.keyId`],
  // The SDK could not find credentials anywhere in the default chain.
  CredentialsProviderError: (c) => [
    'permission-denied',
    `no AWS credentials found for provider ${c.provider} (key ${c.key}): the default chain looked at env vars, SSO, shared config files, credential_process, web identity (IRSA), container credentials (EKS Pod Identity / ECS) and EC2 instance metadata; configure one of them or providers.${c.provider}.credentials`,
  ],
};

/** Connection-level failures: the endpoint is down, unreachable, or dropped us. */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN']);

function retryAfterMs(e: SdkErrorShape): number | undefined {
  const h = e.$response?.headers?.['retry-after'];
  const s = h === undefined ? NaN : Number(h);
  return Number.isFinite(s) && s >= 0 ? Math.round(s * 1000) : undefined;
}

export function classifyAwsError(e: unknown, c: ClassifyContext): KekError {
  if (isKekError(e)) return e;
  const err = (typeof e === 'object' && e !== null ? e : {}) as SdkErrorShape;
  const name = typeof err.name === 'string' ? err.name : '';
  const code = typeof err.code === 'string' ? err.code : '';
  const status = err.$metadata?.httpStatusCode;
  const rid = err.$metadata?.requestId;
  const mk = (k: ErrorCode, msg: string, retryAfter?: number): KekError =>
    new KekError(k, rid !== undefined ? `${msg} (AWS ${name}, request id ${rid})` : msg, { provider: c.provider, cause: e, ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}) });

  // The caller's deadline or cancellation: whatever the SDK made of it, it is ours.
  if (name === 'AbortError' || c.signal?.aborted === true) {
    return new KekError('timeout', `AWS KMS ${c.op} on key ${c.key} abandoned: deadline exceeded or caller cancelled`, { provider: c.provider, cause: e });
  }
  const rule = Object.hasOwn(BY_NAME, name) ? BY_NAME[name] : undefined;
  if (rule) {
    const [k, msg] = rule(c);
    return mk(k, msg, k === 'throttled' ? retryAfterMs(err) : undefined);
  }
  if (CONNECTION_CODES.has(code)) {
    return new KekError('unavailable', `cannot reach AWS KMS for key ${c.key} (${code}): check the endpoint, network path (VPC endpoint, proxy, security groups) and AWS health`, { provider: c.provider, cause: e });
  }
  // Per-attempt request or connection timeouts (throwOnRequestTimeout), after the SDK's retries.
  if (name === 'TimeoutError' || code === 'ETIMEDOUT') {
    return new KekError('timeout', `AWS KMS did not answer for key ${c.key} within the configured request timeout`, { provider: c.provider, cause: e });
  }
  if (status === 429) return mk('throttled', `AWS KMS is throttling calls on key ${c.key}`, retryAfterMs(err));
  if (status !== undefined && status >= 500) return mk('unavailable', `AWS KMS answered HTTP ${status} for key ${c.key}; retrying later may work`);
  // ValidationException, SerializationException, malformed answers, anything unknown: our bug, or AWS
  // changed something. The cause goes to the log, not into the message.
  return mk('internal', `unexpected error from AWS KMS for key ${c.key}${name !== '' ? ` (${name})` : ''}`);
}

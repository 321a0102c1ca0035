/**
 * KEKs in AWS KMS: wrap = Encrypt, unwrap = Decrypt, under one symmetric KMS key, with the wrap context as
 * EncryptionContext (real AAD, and visible in CloudTrail). The key may be named by id, ARN, alias or alias
 * ARN; it is resolved to its ARN with DescribeKey, and every crypto call names that ARN.
 *
 * Version refs are `<key ARN>#<CurrentKeyMaterialId>` (see version-ref.ts). They are read from
 * DescribeKey, cached, and refreshed by rotate() and probe(): Encrypt does not report which material it
 * used, so after an AWS automatic rotation the ref moves at the next probe.
 */
import {
  KekError, MAX_WRAP_PLAINTEXT, deadlineSignal, encryptionContext, needs, raceSignal, throwIfAborted, zeroize,
  type KekProvider, type RetryGate, type ProviderDescription, type WrapContext, type WrappedKey,
} from '@kekbroker/core';
import type { KmsApi, KmsKeyInfo } from './client';
import type { RetryHolder } from './sdk-client';
import { classifyAwsError, type AwsOp } from './classify-error';
import { formatVersionRef, parseVersionRef } from './version-ref';

export interface AwsKmsProviderOptions {
  /** Provider id from config. */
  id: string;
  region: string;
  /** Key id, key ARN, `alias/name` or alias ARN. */
  keyId: string;
  /** Shown in describe() details when set (emulator, VPC endpoint). */
  endpoint?: string;
  /** Backstop for wrap/unwrap/describe/probe when the caller's signal is looser. Default 5000. */
  callTimeoutMs?: number;
  /** Backstop for rotate(), which waits for KMS to finish the rotation. Default 60000. */
  rotationTimeoutMs?: number;
}

/** Largest ciphertext blob Decrypt accepts (API reference: CiphertextBlob 1..6144 bytes). */
const MAX_CIPHERTEXT = 6144;

interface Current {
  readonly arn: string;
  readonly keyMaterialId: string | undefined;
  readonly ref: string;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export class AwsKmsProvider implements KekProvider {
  readonly type = 'aws-kms';
  readonly id: string;
  private readonly opts: Required<Omit<AwsKmsProviderOptions, 'endpoint'>> & { endpoint?: string };
  private current: Current | undefined;
  /** Single flight for the first DescribeKey: a burst of first wraps makes one call. */
  private loading: Promise<Current> | undefined;

  constructor(opts: AwsKmsProviderOptions, private readonly api: KmsApi, private readonly retry: RetryHolder = {}) {
    needs(opts.keyId.trim() !== '', 'AWS KMS keyId must not be empty');
    this.id = opts.id;
    this.opts = { callTimeoutMs: 5000, rotationTimeoutMs: 60_000, ...opts };
  }

  /** The SDK's retries (transient errors only, never throttling) ask this gate first (sdk-client.ts). */
  setRetryGate(gate: RetryGate): void {
    this.retry.gate = gate;
  }

  private fail(e: unknown, op: AwsOp, signal: AbortSignal, key = this.current?.arn ?? this.opts.keyId): KekError {
    return classifyAwsError(e, { provider: this.id, key, op, signal });
  }

  private adopt(info: KmsKeyInfo): Current {
    let ref: string;
    try {
      ref = formatVersionRef(info.arn, info.keyMaterialId);
    } catch (e) {
      throw new KekError('internal', `AWS KMS described key ${this.opts.keyId} with an unexpected ARN or key material id`, { provider: this.id, cause: e });
    }
    const cur: Current = { arn: info.arn, keyMaterialId: info.keyMaterialId, ref };
    this.current = cur;
    return cur;
  }

  private async describeKey(signal: AbortSignal, op: AwsOp): Promise<KmsKeyInfo> {
    try {
      return await raceSignal(this.api.describeKey(this.opts.keyId, signal), signal, `AWS KMS DescribeKey for ${this.opts.keyId}`);
    } catch (e) {
      throw this.fail(e, op, signal, this.opts.keyId);
    }
  }

  private async currentKey(signal: AbortSignal, op: AwsOp): Promise<Current> {
    if (this.current) return this.current;
    // The shared call runs under its own deadline: one impatient caller must not fail the others.
    this.loading ??= this.describeKey(AbortSignal.timeout(this.opts.callTimeoutMs), op)
      .then((info) => this.adopt(info))
      .finally(() => {
        this.loading = undefined;
      });
    return raceSignal(this.loading, signal, `AWS KMS ${op}`);
  }

  async wrap(plaintext: Uint8Array, ctx: WrapContext, signal: AbortSignal): Promise<WrappedKey> {
    needs(plaintext.length > 0 && plaintext.length <= MAX_WRAP_PLAINTEXT, `plaintext must be 1..${MAX_WRAP_PLAINTEXT} bytes`);
    const context = encryptionContext(ctx);
    const sig = deadlineSignal(this.opts.callTimeoutMs, signal);
    throwIfAborted(sig, 'AWS KMS wrap');
    const cur = await this.currentKey(sig, 'wrap');
    try {
      const out = await raceSignal(this.api.encrypt(cur.arn, plaintext, context, sig), sig, 'AWS KMS Encrypt');
      if (out.keyArn !== cur.arn) throw new KekError('internal', `AWS KMS encrypted under ${out.keyArn} although ${cur.arn} was asked for`, { provider: this.id });
      return { keyVersionRef: cur.ref, wrapped: out.ciphertext };
    } catch (e) {
      throw this.fail(e, 'wrap', sig, cur.arn);
    }
  }

  async unwrap(w: WrappedKey, ctx: WrapContext, signal: AbortSignal): Promise<Buffer> {
    const ref = parseVersionRef(w.keyVersionRef);
    if (!ref) throw new KekError('corrupt', 'key version ref is not an AWS KMS key ARN ref', { provider: this.id });
    if (ref.region !== this.opts.region) {
      throw new KekError('not-found', `wrapped by AWS KMS key ${ref.arn} in region ${ref.region}, but provider ${this.id} serves region ${this.opts.region}`, { provider: this.id });
    }
    if (w.wrapped.length === 0 || w.wrapped.length > MAX_CIPHERTEXT) {
      throw new KekError('corrupt', `wrapped key of ${w.wrapped.length} bytes cannot be an AWS KMS ciphertext`, { provider: this.id });
    }
    const context = encryptionContext(ctx);
    const sig = deadlineSignal(this.opts.callTimeoutMs, signal);
    throwIfAborted(sig, 'AWS KMS unwrap');
    let out: Awaited<ReturnType<KmsApi['decrypt']>>;
    try {
      out = await raceSignal(this.api.decrypt(ref.arn, w.wrapped, context, sig), sig, 'AWS KMS Decrypt');
    } catch (e) {
      throw this.fail(e, 'unwrap', sig, ref.arn);
    }
    const plaintext = Buffer.from(out.plaintext);
    zeroize(out.plaintext);
    if (out.keyArn !== ref.arn) {
      zeroize(plaintext);
      throw new KekError('corrupt', `AWS KMS decrypted with ${out.keyArn}, not ${ref.arn}`, { provider: this.id });
    }
    return plaintext;
  }

  /**
   * RotateKeyOnDemand, then wait until DescribeKey reports new key material: KMS rotates asynchronously,
   * and the new ref must name the material Encrypt will use. Each key allows 25 on-demand rotations in
   * its lifetime; the 26th fails as permission-denied with a message saying what to do.
   */
  async rotate(signal: AbortSignal): Promise<ProviderDescription> {
    const sig = deadlineSignal(this.opts.rotationTimeoutMs, signal);
    const before = this.adopt(await this.describeKey(sig, 'rotate'));
    if (before.keyMaterialId === undefined) {
      throw new KekError('invalid-input', `AWS KMS key ${before.arn} reports no key material id (custom key store?): kekbroker cannot rotate it or tell its versions apart`, { provider: this.id });
    }
    try {
      await raceSignal(this.api.rotateKeyOnDemand(before.arn, sig), sig, 'AWS KMS RotateKeyOnDemand');
    } catch (e) {
      throw this.fail(e, 'rotate', sig, before.arn);
    }
    for (let wait = 50; ; wait = Math.min(wait * 2, 2000)) {
      if (sig.aborted) {
        throw new KekError('timeout', `rotation of AWS KMS key ${before.arn} started but its new key material was not current before the deadline; the next probe picks it up`, { provider: this.id });
      }
      const info = await this.describeKey(sig, 'rotate');
      if (info.keyMaterialId !== before.keyMaterialId || info.arn !== before.arn) return this.describeNow(this.adopt(info));
      await sleep(wait, sig);
    }
  }

  async describe(signal: AbortSignal): Promise<ProviderDescription> {
    const sig = deadlineSignal(this.opts.callTimeoutMs, signal);
    return this.describeNow(await this.currentKey(sig, 'describe'));
  }

  private describeNow(cur: Current): ProviderDescription {
    return {
      id: this.id,
      type: this.type,
      currentVersionRef: cur.ref,
      details: {
        region: this.opts.region,
        keyId: this.opts.keyId,
        keyArn: cur.arn,
        ...(cur.keyMaterialId !== undefined ? { keyMaterialId: cur.keyMaterialId } : {}),
        ...(this.opts.endpoint !== undefined ? { endpoint: this.opts.endpoint } : {}),
      },
    };
  }

  /**
   * DescribeKey only: cheap (its own request quota, no crypto), and it proves credentials, network and
   * key state at once. It also follows automatic rotations and alias re-pointing into the cached ref.
   */
  async probe(signal: AbortSignal): Promise<void> {
    const sig = deadlineSignal(this.opts.callTimeoutMs, signal);
    const info = await this.describeKey(sig, 'probe');
    const cur = this.adopt(info);
    if (info.keyUsage !== undefined && info.keyUsage !== 'ENCRYPT_DECRYPT') {
      throw new KekError('invalid-input', `AWS KMS key ${cur.arn} has KeyUsage ${info.keyUsage}; kekbroker needs a symmetric ENCRYPT_DECRYPT key`, { provider: this.id });
    }
    if (info.keySpec !== undefined && info.keySpec !== 'SYMMETRIC_DEFAULT') {
      throw new KekError('invalid-input', `AWS KMS key ${cur.arn} has KeySpec ${info.keySpec}; kekbroker needs SYMMETRIC_DEFAULT`, { provider: this.id });
    }
    if (!info.enabled) {
      const hint = info.keyState === 'PendingDeletion' ? 'cancel the deletion (aws kms cancel-key-deletion), then enable it' : 'enable it (aws kms enable-key)';
      throw new KekError('permission-denied', `AWS KMS key ${cur.arn} is ${info.keyState}: ${hint}, or point providers.${this.id}.keyId at an enabled key`, { provider: this.id });
    }
  }

  async close(): Promise<void> {
    this.api.close();
  }
}

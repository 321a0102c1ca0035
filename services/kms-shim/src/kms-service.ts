/**
 * The KMS v2 service kube-apiserver calls. Status is answered from the broker client's cached status
 * (never a call per poll). Encrypt/Decrypt forward on the multiplexed session within a deadline budget
 * below the apiserver's timeout. When we cannot serve, every method returns a gRPC error (UNAVAILABLE),
 * never `healthz: "err"` with OK: that keeps the apiserver writing forever (kubernetes#138950).
 */
import type * as grpc from '@grpc/grpc-js';
import { kmsV2, serializeMessage, type DecryptRequest__Output, DecryptResponse, EncryptRequest__Output, EncryptResponse, KeyManagementServiceHandlers, StatusResponse } from '@kekbroker/proto';
import { KekError, toKekError, zeroize } from '@kekbroker/core';
import type { Logger } from '@kekbroker/telemetry';
import { sessionError } from './broker-client';
import type { BrokerPool } from './broker-pool';
import type { ShimMetrics } from './metrics';
import { CIPHERTEXT_MAX_BYTES, ENVELOPE_ANNOTATION_VALUE, EnvelopeBudget, PLAINTEXT_MAX_BYTES, VERSION_ANNOTATION, checkDecryptRequest, checkEncryptAnswer, checkKeyId } from './validate';

export interface KmsServiceOptions {
  keyring: string;
  /** The broker fleet (one endpoint or several). */
  broker: Pick<BrokerPool, 'status' | 'statusAt' | 'connected' | 'endpoint' | 'waitConnected' | 'call' | 'lastError'>;
  /** Total time the shim allows itself per call (below the apiserver's `timeout`, default 3 s). */
  budgetMs: number;
  /** Keep answering Status OK this long after losing the broker (covers a broker takeover). */
  graceMs: number;
  log: Logger;
  metrics: ShimMetrics;
}

/** Left for our own answer to travel back after the broker replies. */
const RETURN_MARGIN_MS = 50;
/**
 * A connected broker re-sends status every 5 s. Three missed heartbeats on a live connection means the
 * broker is hung (e.g. SIGSTOP) even though TCP keepalive has not noticed yet.
 */
const STALE_WHILE_CONNECTED_MS = 15_000;

export class KmsV2Service {
  private readonly envelope: EnvelopeBudget;

  constructor(private readonly o: KmsServiceOptions) {
    this.envelope = new EnvelopeBudget(o.keyring);
  }

  /** The Status answer, or the reason we cannot serve. */
  statusNow(): { ok: true; keyId: string } | { ok: false; reason: string } {
    const { broker, graceMs } = this.o;
    const s = broker.status;
    if (!s) return { ok: false, reason: `no status from the broker yet (${broker.lastError ?? `connecting to ${broker.endpoint}`})` };
    const age = performance.now() - broker.statusAt;
    const limit = broker.connected ? Math.max(graceMs, STALE_WHILE_CONNECTED_MS) : graceMs;
    if (age > limit) {
      const why = broker.connected ? 'connected but silent' : `disconnected${broker.lastError ? `: ${broker.lastError}` : ''}`;
      return { ok: false, reason: `broker unreachable for ${Math.round(age / 1000)} s (${why}; grace ${limit / 1000} s)` };
    }
    if (!s.healthy) return { ok: false, reason: `broker reports keyring ${s.keyring} unhealthy: ${s.reason}` };
    if (!s.key_id) return { ok: false, reason: 'broker has no key_id for the keyring' };
    return { ok: true, keyId: s.key_id };
  }

  private budget(call: { getDeadline(): grpc.Deadline }): number {
    const d = call.getDeadline();
    const t = d instanceof Date ? d.getTime() : d;
    const callerLeft = Number.isFinite(t) ? t - Date.now() - RETURN_MARGIN_MS : Infinity;
    return Math.max(1, Math.min(this.o.budgetMs, callerLeft));
  }

  private async session(op: { wrap?: object; unwrap?: object }, budgetMs: number) {
    const t0 = performance.now();
    // During a reconnect (broker takeover) wait for the new connection rather than fail at once.
    if (!this.o.broker.connected && !(await this.o.broker.waitConnected(budgetMs))) {
      throw new KekError('unavailable', `no broker reachable within ${budgetMs} ms (${this.o.broker.endpoint})`);
    }
    const left = Math.max(1, budgetMs - (performance.now() - t0));
    // The pool re-sends to another replica within the budget when one dies, hangs or drains.
    const r = await this.o.broker.call(op, Math.floor(left));
    if (r.error) throw sessionError(r.error);
    return r;
  }

  handlers(): KeyManagementServiceHandlers {
    const def = kmsV2().KeyManagementService.service;
    /**
     * `secretOf` names the key material in an answer (Decrypt's plaintext): the answer is then serialised here
     * and that buffer, which this handler owns, zeroed once its bytes have left (core/secrets.ts, rule 4).
     */
    const observe = <Req, Res>(method: string, fn: (call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>, secretOf?: (res: Res) => Buffer) =>
      (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>): void => {
        const t0 = performance.now();
        fn(call).then(
          (res) => {
            this.o.metrics.observe(method, 'ok', (performance.now() - t0) / 1000);
            if (!secretOf) return callback(null, res);
            const bytes = serializeMessage(def, method, 'response', res);
            zeroize(secretOf(res));
            return callback(null, bytes);
          },
          (e: unknown) => {
            const err = toKekError(e);
            this.o.metrics.observe(method, err.code, (performance.now() - t0) / 1000);
            if (err.code === 'internal' || err.code === 'unavailable') this.o.log.warn({ err: e, method }, 'KMS call failed');
            callback({ code: err.grpcStatus, details: err.message });
          },
        );
      };

    return {
      Status: observe<unknown, StatusResponse>('Status', async () => {
        const s = this.statusNow();
        if (!s.ok) throw new KekError('unavailable', s.reason);
        checkKeyId(s.keyId, 'Status');
        return { version: 'v2', healthz: 'ok', key_id: s.keyId };
      }),

      Encrypt: observe<EncryptRequest__Output, EncryptResponse>('Encrypt', async (call) => {
        const { plaintext, uid } = call.request;
        if (plaintext.length === 0) throw new KekError('invalid-input', 'plaintext is empty');
        if (plaintext.length > PLAINTEXT_MAX_BYTES) throw new KekError('invalid-input', `plaintext is larger than ${PLAINTEXT_MAX_BYTES} bytes`);
        const now = this.statusNow();
        this.envelope.check(now.ok ? now.keyId : undefined, plaintext.length);
        let r;
        try {
          r = await this.session({ wrap: { keyring: this.o.keyring, plaintext, request_id: uid } }, this.budget(call));
        } finally {
          zeroize(plaintext); // ours (deserialised for this call); the pool's last attempt has settled, every send serialised
        }
        if (!r.wrap) throw new KekError('internal', 'broker answered a wrap without a result');
        this.envelope.learn(r.wrap.key_id, plaintext.length, r.wrap.ciphertext.length);
        // Not learned yet for this key_id: the answer tells whether the plaintext alone made it too large.
        const max = this.envelope.maxPlaintext(r.wrap.key_id);
        if (r.wrap.ciphertext.length > CIPHERTEXT_MAX_BYTES && plaintext.length > max) throw this.envelope.tooLarge(plaintext.length, max);
        const annotations = { [VERSION_ANNOTATION]: ENVELOPE_ANNOTATION_VALUE };
        checkEncryptAnswer(r.wrap.ciphertext, r.wrap.key_id, annotations);
        return { ciphertext: r.wrap.ciphertext, key_id: r.wrap.key_id, annotations };
      }),

      Decrypt: observe<DecryptRequest__Output, DecryptResponse>('Decrypt', async (call) => {
        const { ciphertext, key_id, uid, annotations } = call.request;
        checkDecryptRequest(this.o.keyring, ciphertext, key_id, annotations);
        const r = await this.session({ unwrap: { keyring: this.o.keyring, ciphertext, key_id, request_id: uid } }, this.budget(call));
        if (!r.unwrap) throw new KekError('internal', 'broker answered an unwrap without a result');
        return { plaintext: r.unwrap.plaintext };
      }, (res) => res.plaintext as Buffer),
    };
  }
}

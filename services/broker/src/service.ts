/**
 * The broker's data plane, independent of transport: who may do what (tenants from config), deadlines,
 * size limits, audit lines and metrics around each keyring call. The gRPC and HTTP adapters translate to
 * and from this; they hold no logic of their own.
 */
import { KekError, needs, toKekError } from '@kekbroker/core';
import { TokenBucket, boundedSignal } from '@kekbroker/resilience';
import type { BrokerConfig } from '@kekbroker/config';
import type { Keyring, UnwrapResult, WrapResult } from '@kekbroker/keyring';
import type { Logger } from '@kekbroker/telemetry';
import type { BrokerMetrics } from './metrics';
import type { UsageBook } from './usage';
import { TenantRateLimited, isCallerFacing, newCorrelationId, publicError } from './public-error';

export interface Caller {
  tenant: string;
  /** Caller's request id (kube-apiserver uid), for the audit line. */
  requestId?: string;
  /** Caller's own deadline, if it sent one. */
  deadlineMs?: number;
  signal?: AbortSignal;
}

type Op = 'wrap' | 'unwrap';

export class BrokerService {
  /** Per-tenant API rate limits (tenants.<name>.rateLimit); tenants without one are not limited. */
  private readonly tenantLimits = new Map<string, TokenBucket>();

  constructor(
    private readonly cfg: BrokerConfig,
    readonly keyrings: ReadonlyMap<string, Keyring>,
    private readonly metrics: BrokerMetrics,
    private readonly audit: Logger | undefined,
    private readonly log: Logger,
    readonly usage: UsageBook,
  ) {
    for (const [name, t] of Object.entries(cfg.tenants)) {
      if (t.rateLimit) this.tenantLimits.set(name, new TokenBucket({ ...t.rateLimit, name: `tenant "${name}" rate limit` }));
    }
  }

  /** One tenant over its limit is refused at once (RESOURCE_EXHAUSTED); other tenants are not affected. */
  private admit(tenant: string): void {
    const bucket = this.tenantLimits.get(tenant);
    if (bucket && !bucket.tryTake()) {
      throw new TenantRateLimited(`tenant "${tenant}" is over its rate limit (${bucket.ratePerSec} requests/s, burst ${bucket.burst}); slow down or raise tenants.${tenant}.rateLimit`);
    }
  }

  /** The tenant and keyring must exist, and the tenant must be allowed the operation on the keyring. */
  authorize(tenant: string, keyringName: string, op: Op): Keyring {
    // Own properties only: a caller-supplied "constructor" must not find Object.prototype.constructor.
    const t = Object.hasOwn(this.cfg.tenants, tenant) ? this.cfg.tenants[tenant] : undefined;
    if (!t) throw new KekError('unauthenticated', 'unknown tenant');
    needs(keyringName.length > 0, 'keyring is required');
    const keyring = this.keyrings.get(keyringName);
    // Same answer for "does not exist" and "not yours": a tenant must not learn other tenants' keyrings.
    if (!keyring || !t.keyrings.includes(keyringName)) throw new KekError('permission-denied', `tenant "${tenant}" may not use keyring "${keyringName}"`);
    if (!t.operations.includes(op)) throw new KekError('permission-denied', `tenant "${tenant}" may not ${op}`);
    return keyring;
  }

  /**
   * The request's deadline, made on first use: an unwrap answered from L1 never asks for it, and making one
   * (a timer signal joined to the caller's) costs more than the whole cache hit.
   */
  private signalFor(caller: Caller): () => AbortSignal {
    const ms = Math.min(this.cfg.limits.deadlineMs, caller.deadlineMs && caller.deadlineMs > 0 ? caller.deadlineMs : Infinity);
    const t0 = performance.now();
    let made: AbortSignal | undefined;
    // Time already spent (validation, the cache lookup) counts against the deadline.
    return () => (made ??= boundedSignal(Math.max(0, ms - (performance.now() - t0)), caller.signal));
  }

  async wrap(caller: Caller, keyringName: string, plaintext: Uint8Array): Promise<WrapResult> {
    return this.observe('wrap', caller, keyringName, async (out) => {
      needs(plaintext.length > 0, 'plaintext is empty');
      needs(plaintext.length <= this.cfg.limits.maxPlaintextBytes, `plaintext is larger than ${this.cfg.limits.maxPlaintextBytes} bytes`);
      const keyring = this.authorize(caller.tenant, keyringName, 'wrap');
      this.admit(caller.tenant);
      const r = await keyring.wrap(caller.tenant, plaintext, this.signalFor(caller)());
      out.keyId = r.keyId;
      return r;
    });
  }

  async unwrap(caller: Caller, keyringName: string, ciphertext: Uint8Array, expectedKeyId?: string): Promise<UnwrapResult> {
    return this.observe('unwrap', caller, keyringName, async (out) => {
      needs(ciphertext.length > 0, 'ciphertext is empty');
      const keyring = this.authorize(caller.tenant, keyringName, 'unwrap');
      this.admit(caller.tenant);
      const r = await keyring.unwrap(caller.tenant, ciphertext, this.signalFor(caller), expectedKeyId);
      out.keyId = r.keyId;
      out.cached = r.cached;
      out.servedStale = r.servedStale;
      return r;
    });
  }

  private async observe<T>(op: Op, caller: Caller, keyring: string, fn: (out: { keyId?: string; cached?: boolean; servedStale?: boolean }) => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    const out: { keyId?: string; cached?: boolean; servedStale?: boolean } = {};
    let result = 'ok';
    try {
      return await fn(out);
    } catch (e) {
      const err = toKekError(e);
      result = err.code;
      if (isCallerFacing(err)) throw err;
      // The caller gets the code, a short reason and this id; the details go to the log only.
      const correlationId = newCorrelationId();
      const line = { err: e, op, keyring: this.keyrings.has(keyring) ? keyring : 'unknown', tenant: caller.tenant, code: err.code, provider: err.provider, correlationId };
      if (err.code === 'internal') this.log.error(line, `internal error: ${err.message}`);
      else this.log.warn(line, `${op} failed: ${err.message}`);
      throw publicError(err, correlationId);
    } finally {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      // Label values must come from config: a caller-chosen keyring name that does not exist is "unknown".
      const tenantLabel = Object.hasOwn(this.cfg.tenants, caller.tenant) ? caller.tenant : 'unknown';
      const keyringLabel = this.keyrings.has(keyring) ? keyring : 'unknown';
      this.metrics.requests.inc({ op, keyring: keyringLabel, tenant: tenantLabel, result });
      if (result === 'ok' && out.keyId && tenantLabel !== 'unknown' && keyringLabel !== 'unknown') this.usage.record(keyringLabel, out.keyId, tenantLabel, op);
      this.metrics.duration.observe({ op, result }, seconds);
      this.audit?.info({ audit: true, op, tenant: tenantLabel, keyring: keyringLabel, keyId: out.keyId, cached: out.cached, servedStale: out.servedStale || undefined, result, ms: Math.round(seconds * 1e6) / 1e3, uid: caller.requestId?.slice(0, 128) });
    }
  }
}

/**
 * A keyring: an ordered list of providers (the first active, the others passive) that together seal
 * envelopes. Wrap seals a fresh envelope key K under every provider at once (multi-wrap) so any one of them
 * can open it later; unwrap tries the L1 cache, then the providers that wrapped it, healthiest first.
 *
 * key_id and generation come from the providers' current version refs (see core/envelope/key-id.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  ENVELOPE_VERSION, KEY_BYTES, KekError, decodeEnvelope, encodeEnvelope, encodeHeader, formatKeyId, generationOf,
  openPayload, payloadAad, sealPayload, throwIfAborted, toKekError, zeroize,
  type EnvelopeWrap, type KekProvider, type ProviderDescription, type WrapContext,
} from '@kekbroker/core';
import type { KeyCache } from '@kekbroker/cache';
import { HealthBook, type ProviderHealth } from './health';

export interface KeyringOptions {
  name: string;
  providers: readonly KekProvider[];
  /** Wrap fails unless at least this many providers wrapped K. The active provider must always succeed. */
  minWraps?: number;
  /** L1 -> sealed L2 -> single-flight -> load (packages/cache KeyCache). */
  cache: KeyCache;
  /** Called after every provider call, for metrics and audit. */
  onProviderCall?: (e: { provider: string; op: 'wrap' | 'unwrap'; result: string; seconds: number }) => void;
}

export interface KeyringStatus {
  keyring: string;
  keyId: string | undefined;
  healthy: boolean;
  reason: string;
  providers: Array<{ id: string; type: string; role: 'active' | 'passive' | 'down'; currentVersionRef: string; health: ProviderHealth }>;
}

export interface WrapResult {
  ciphertext: Buffer;
  keyId: string;
}

export interface UnwrapResult {
  plaintext: Buffer;
  keyId: string;
  stale: boolean;
  cached: boolean;
  /** Served from cache past its TTL because the KMS failed (cache.maxStaleSeconds); not the same as `stale`. */
  servedStale: boolean;
}

export class Keyring extends EventEmitter {
  readonly name: string;
  private readonly providers: readonly KekProvider[];
  private readonly minWraps: number;
  private readonly cache: KeyCache;
  private readonly health: HealthBook;
  private descriptions = new Map<string, ProviderDescription>();
  private generation: Buffer | undefined;
  private keyIdNow: string | undefined;
  private readonly onProviderCall: KeyringOptions['onProviderCall'];

  constructor(opts: KeyringOptions) {
    super();
    /* Precondition: a keyring needs at least one provider, and minWraps cannot exceed them. */
    if (opts.providers.length === 0) throw new Error(`keyring ${opts.name} has no providers`);
    this.name = opts.name;
    this.providers = opts.providers;
    this.minWraps = opts.minWraps ?? 1;
    if (this.minWraps > this.providers.length) throw new Error(`keyring ${opts.name}: minWraps exceeds provider count`);
    this.cache = opts.cache;
    this.health = new HealthBook(opts.providers.map((p) => p.id));
    this.onProviderCall = opts.onProviderCall;
  }

  /** The current write key_id, once every provider has described its current version. */
  get keyId(): string | undefined {
    return this.keyIdNow;
  }

  /** Ask every provider for its current version; recompute generation and key_id. Emits 'change'. */
  async refresh(signal: AbortSignal): Promise<void> {
    const results = await Promise.allSettled(this.providers.map((p) => p.describe(signal)));
    results.forEach((r, i) => {
      const p = this.providers[i] as KekProvider;
      if (r.status === 'fulfilled') {
        this.descriptions.set(p.id, r.value);
        this.health.success(p.id);
      } else {
        this.health.failure(p.id, toKekError(r.reason));
      }
    });
    const before = this.keyIdNow;
    // key_id covers every provider; until all have answered once we cannot name the generation.
    if (this.providers.every((p) => this.descriptions.has(p.id))) {
      this.generation = generationOf(this.providers.map((p) => ({ providerId: p.id, keyVersionRef: this.descriptions.get(p.id)?.currentVersionRef ?? '' })));
      this.keyIdNow = formatKeyId(this.name, this.generation);
    }
    if (before !== this.keyIdNow) this.emit('change');
    const failed = results.find((r) => r.status === 'rejected');
    if (failed && !this.keyIdNow) throw toKekError((failed).reason);
  }

  /** Probe every provider (no crypto for cloud providers) and update health. Emits 'change' on a flip. */
  async probe(signal: AbortSignal): Promise<void> {
    await Promise.all(
      this.providers.map(async (p) => {
        try {
          await p.probe(signal);
          if (this.health.success(p.id)) this.emit('change');
        } catch (e) {
          if (this.health.failure(p.id, toKekError(e))) this.emit('change');
        }
      }),
    );
  }

  status(): KeyringStatus {
    const active = this.providers[0] as KekProvider;
    const activeHealth = this.health.get(active.id);
    const upCount = this.providers.filter((p) => this.health.get(p.id).up).length;
    let reason = 'ok';
    if (!this.keyIdNow) reason = 'key_id unknown: not every provider has described its current key version yet';
    else if (!activeHealth.up) reason = `active provider ${active.id} is down (${activeHealth.reason})`;
    else if (upCount < this.minWraps) reason = `only ${upCount} provider(s) up, minWraps is ${this.minWraps}`;
    return {
      keyring: this.name,
      keyId: this.keyIdNow,
      healthy: reason === 'ok',
      reason,
      providers: this.providers.map((p, i) => {
        const health = this.health.get(p.id);
        return {
          id: p.id,
          type: p.type,
          role: !health.up ? 'down' : i === 0 ? 'active' : 'passive',
          currentVersionRef: this.descriptions.get(p.id)?.currentVersionRef ?? '',
          health,
        };
      }),
    };
  }

  private ctx(tenant: string): WrapContext {
    return { tenant, keyring: this.name, envelopeVersion: ENVELOPE_VERSION };
  }

  private async timed<T>(provider: string, op: 'wrap' | 'unwrap', fn: () => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    try {
      const out = await fn();
      if (this.health.success(provider)) this.emit('change');
      this.onProviderCall?.({ provider, op, result: 'ok', seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
      return out;
    } catch (e) {
      const err = toKekError(e);
      if (this.health.failure(provider, err)) this.emit('change');
      this.onProviderCall?.({ provider, op, result: err.code, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
      throw err;
    }
  }

  async wrap(tenant: string, plaintext: Uint8Array, signal: AbortSignal): Promise<WrapResult> {
    if (!this.generation || !this.keyIdNow) throw new KekError('unavailable', `keyring ${this.name} is not ready: ${this.status().reason}`);
    const ctx = this.ctx(tenant);
    const k = randomBytes(KEY_BYTES);
    try {
      const settled = await Promise.allSettled(this.providers.map((p) => this.timed(p.id, 'wrap', () => p.wrap(k, ctx, signal))));
      const wraps: EnvelopeWrap[] = [];
      settled.forEach((r, i) => {
        if (r.status === 'fulfilled') wraps.push({ providerId: (this.providers[i] as KekProvider).id, ...r.value });
      });
      const active = settled[0] as PromiseSettledResult<unknown>;
      if (active.status === 'rejected') throw active.reason as KekError;
      if (wraps.length < this.minWraps) {
        const firstErr = settled.find((r) => r.status === 'rejected') as PromiseRejectedResult;
        throw new KekError('unavailable', `keyring ${this.name}: only ${wraps.length} of minWraps ${this.minWraps} providers wrapped the key`, { cause: firstErr.reason });
      }
      // A provider rotated behind our back (console, another replica): its wrap names a version we did not
      // describe. Re-read versions so the envelope's generation (and the key_id we return) are true.
      if (wraps.some((w) => this.descriptions.get(w.providerId)?.currentVersionRef !== w.keyVersionRef)) await this.refresh(signal);
      throwIfAborted(signal, 'wrap');
      const generation = this.generation;
      const header = encodeHeader({ version: ENVELOPE_VERSION, keyring: this.name, generation, wraps });
      const { nonce, sealed } = sealPayload(k, plaintext, payloadAad(tenant, header));
      const ciphertext = encodeEnvelope({ version: ENVELOPE_VERSION, keyring: this.name, generation, wraps, nonce, sealed });
      // The broker saw this plaintext: cache it so other apiservers' Decrypts of this seed never reach a KMS.
      this.cache.put(cacheKey(tenant, ciphertext), { tenant, keyring: this.name, generation: generation.toString('hex') }, plaintext);
      return { ciphertext, keyId: formatKeyId(this.name, generation) };
    } finally {
      zeroize(k);
    }
  }

  async unwrap(tenant: string, ciphertext: Uint8Array, signal: AbortSignal, expectedKeyId?: string): Promise<UnwrapResult> {
    const env = decodeEnvelope(ciphertext);
    if (env.keyring !== this.name) throw new KekError('invalid-input', `envelope belongs to keyring "${env.keyring}", not "${this.name}"`);
    const keyId = formatKeyId(env.keyring, env.generation);
    if (expectedKeyId !== undefined && expectedKeyId !== '' && expectedKeyId !== keyId) {
      throw new KekError('invalid-input', 'key_id does not match the generation recorded in the ciphertext');
    }
    const stale = keyId !== this.keyIdNow;
    const ck = cacheKey(tenant, ciphertext);
    // L1, L2, then one KMS call per envelope across the fleet; the result is ours (core/secrets.ts).
    const got = await this.cache.getOrLoad(ck, { tenant, keyring: this.name, generation: Buffer.from(env.generation).toString('hex') }, signal, (shared) => this.unwrapUncached(tenant, env, shared ?? signal));
    return { plaintext: got.plaintext, keyId, stale, cached: got.cached, servedStale: got.stale };
  }

  private async unwrapUncached(tenant: string, env: ReturnType<typeof decodeEnvelope>, signal: AbortSignal): Promise<Buffer> {
    const ctx = this.ctx(tenant);
    const byId = new Map(this.providers.map((p) => [p.id, p] as const));
    // Healthy providers first, in keyring order; a down provider is still tried last rather than never.
    const candidates = env.wraps
      .filter((w) => byId.has(w.providerId))
      .sort((a, b) => rank(this, a.providerId) - rank(this, b.providerId));
    if (candidates.length === 0) throw new KekError('not-found', `no provider of keyring ${this.name} wrapped this envelope`);
    const errors: KekError[] = [];
    for (const w of candidates) {
      throwIfAborted(signal, 'unwrap');
      const p = byId.get(w.providerId) as KekProvider;
      let k: Buffer | undefined;
      try {
        k = await this.timed(p.id, 'unwrap', () => p.unwrap(w, ctx, signal));
        return openPayload(k, env.nonce, env.sealed, payloadAad(tenant, env.header));
      } catch (e) {
        const err = toKekError(e);
        // The payload failed authentication under a key a provider returned: the envelope is not this
        // tenant's (or was tampered). Another provider would return the same K; stop here.
        if (k && err.code === 'corrupt') throw err;
        errors.push(err);
        if (err.code === 'timeout') break;
      } finally {
        zeroize(k);
      }
    }
    throw pickError(errors);
  }

  providerHealth(id: string): ProviderHealth {
    return this.health.get(id);
  }

  /** Rotate every provider (new primary version), then move the keyring to the new generation. */
  async rotate(signal: AbortSignal): Promise<string> {
    for (const p of this.providers) {
      throwIfAborted(signal, 'rotate');
      this.descriptions.set(p.id, await p.rotate(signal));
    }
    await this.refresh(signal);
    if (!this.keyIdNow) throw new KekError('internal', 'rotation left the keyring without a key_id');
    return this.keyIdNow;
  }
}

function rank(k: Keyring, providerId: string): number {
  return k.providerHealth(providerId).up ? 0 : 1;
}

/** Prefer the error that tells the caller most: their own mistake first, then availability. */
function pickError(errors: KekError[]): KekError {
  const order = ['corrupt', 'invalid-input', 'permission-denied', 'not-found', 'throttled', 'unavailable', 'timeout', 'internal'];
  const sorted = [...errors].sort((a, b) => order.indexOf(a.code) - order.indexOf(b.code));
  return sorted[0] ?? new KekError('internal', 'unwrap failed');
}

/** Cache key: a hash, so the cache map never holds the ciphertext itself or lets one tenant hit another's entry. */
export function cacheKey(tenant: string, ciphertext: Uint8Array): string {
  return createHash('sha256').update(tenant).update('\0').update(ciphertext).digest('base64');
}



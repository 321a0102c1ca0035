/**
 * A keyring: an ordered list of providers (the first active, the others passive) that together seal
 * envelopes. Wrap seals a fresh envelope key K under every reachable provider at once (multi-wrap) so any
 * one of them can open it later; unwrap tries the L1 cache, then the providers that wrapped it, healthiest first.
 *
 * Resilience (see acting-active.ts and health.ts): every provider call goes through the provider's guard
 * (breaker, call budget, isolation) with a timeout cut from the caller's remaining deadline; a Wrap waits
 * for the acting active and gives passives a bounded share; an envelope that lacks a provider's wrap is
 * "degraded" and counted. key_id and generation come from the providers' current version refs
 * (core/envelope/key-id.ts) and never change on failover.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  ENVELOPE_VERSION, KekError, decodeEnvelope, formatKeyId, signalOf, throwIfAborted, toKekError,
  type KekProvider, type SignalSource, type ProviderDescription, type WrapContext,
} from '@kekbroker/core';
import type { KeyCache } from '@kekbroker/cache';
import { ProviderGuard, boundedSignal } from '@kekbroker/resilience';
import { ActingActive, type ActingChange } from './acting-active';
import { MisconfigBook, providerHealth, type ProviderHealth } from './health';
import { KeyringGeneration } from './generation';
import { openEnvelope, sealEnvelope, type SealPolicy } from './seal';
import type { VersionRefStore } from './version-ref-store';

export interface KeyringOptions {
  name: string;
  providers: readonly KekProvider[];
  /** Wrap fails unless at least this many providers wrapped K. */
  minWraps?: number;
  /** L1 -> sealed L2 -> single-flight -> load (packages/cache KeyCache). */
  cache: KeyCache;
  /** One guard per provider id, shared with other keyrings; missing ones get a default guard of their own. */
  guards?: ReadonlyMap<string, ProviderGuard>;
  /** A recovered provider becomes acting active again only after this long healthy. Default 60 s. */
  holdDownMs?: number;
  /** Unwrap every new wrap once before it goes into an envelope (catches a provider returning bad bytes). Default true. */
  verifyWraps?: boolean;
  /** Deadline assumed for a signal that does not carry one (see resilience/deadline.ts). Default 2500 ms. */
  defaultDeadlineMs?: number;
  /** Where the last known version refs of every provider are kept, so key_id survives a provider outage at start. */
  versionRefs?: VersionRefStore;
  /**
   * Retired generations (the broker's lifecycle): a reason when `keyId` may no longer be unwrapped. Asked only
   * for envelopes of a generation other than the current one, which can never be retired.
   */
  retiredReason?: (keyId: string) => string | undefined;
  /** Called after every provider call, for metrics and audit. */
  onProviderCall?: (e: { provider: string; op: 'wrap' | 'unwrap' | 'verify'; result: string; seconds: number }) => void;
  /** Resilience events, for metrics and logs. */
  onEvent?: (e: KeyringEvent) => void;
}

export type KeyringEvent =
  | { type: 'degraded'; keyring: string; missing: string[]; generation: string }
  | { type: 'passive-dropped'; keyring: string; provider: string; reason: string }
  | { type: 'bad-answer'; keyring: string; provider: string; reason: string }
  | { type: 'acting-active'; keyring: string; change: ActingChange }
  | { type: 'misconfigured'; keyring: string; provider: string; reason: string | undefined }
  | { type: 'version-refs-error'; keyring: string; error: unknown };

export interface KeyringStatus {
  keyring: string;
  keyId: string | undefined;
  healthy: boolean;
  reason: string;
  configuredActive: string;
  actingActive: string;
  pinned: boolean;
  holdDownSeconds: number;
  /** Envelopes sealed without some provider's wrap since start, by key_id (generation) and missing provider. */
  degradedEnvelopes: Record<string, Record<string, number>>;
  providers: Array<{
    id: string; type: string; role: 'active' | 'passive' | 'down' | 'isolated' | 'refusing';
    currentVersionRef: string; versionRefFromStore: boolean; holdDownLeftSeconds: number; health: ProviderHealth;
  }>;
}

export interface WrapResult {
  ciphertext: Buffer;
  keyId: string;
}

export interface UnwrapResult {
  plaintext: Buffer;
  keyId: string;
  /** The envelope is from an older generation than the current one (tell the caller to re-encrypt). */
  stale: boolean;
  cached: boolean;
  /** Served from cache past its TTL because the KMS failed (cache.maxStaleSeconds); not the same as `stale`. */
  servedStale: boolean;
}

export class Keyring extends EventEmitter {
  readonly name: string;
  private readonly providers: readonly KekProvider[];
  private readonly byId: ReadonlyMap<string, KekProvider>;
  private readonly guards: ReadonlyMap<string, ProviderGuard>;
  private readonly minWraps: number;
  private readonly cache: KeyCache;
  private readonly misconfig = new MisconfigBook();
  private readonly acting: ActingActive;
  private readonly gen: KeyringGeneration;
  private readonly policy: SealPolicy;
  private readonly onProviderCall: KeyringOptions['onProviderCall'];
  private readonly onEvent: KeyringOptions['onEvent'];
  private readonly retiredReason: KeyringOptions['retiredReason'];

  constructor(opts: KeyringOptions) {
    super();
    /* Precondition: a keyring needs at least one provider, and minWraps cannot exceed them. */
    if (opts.providers.length === 0) throw new Error(`keyring ${opts.name} has no providers`);
    this.name = opts.name;
    this.providers = opts.providers;
    this.byId = new Map(opts.providers.map((p) => [p.id, p] as const));
    this.minWraps = opts.minWraps ?? 1;
    if (this.minWraps > this.providers.length) throw new Error(`keyring ${opts.name}: minWraps exceeds provider count`);
    this.cache = opts.cache;
    this.guards = new Map(opts.providers.map((p) => [p.id, opts.guards?.get(p.id) ?? new ProviderGuard(p.id)] as const));
    this.acting = new ActingActive(opts.providers.map((p) => p.id), this.guards, opts.holdDownMs ?? 60_000);
    this.onProviderCall = opts.onProviderCall;
    this.onEvent = opts.onEvent;
    this.retiredReason = opts.retiredReason;
    this.gen = new KeyringGeneration(opts.name, opts.providers, opts.versionRefs, (error) => this.event({ type: 'version-refs-error', keyring: this.name, error }));
    this.policy = {
      minWraps: this.minWraps,
      verify: opts.verifyWraps ?? true,
      defaultDeadlineMs: opts.defaultDeadlineMs ?? 2500,
    };
    for (const g of this.guards.values()) {
      g.on('transition', () => this.reevaluate());
      g.on('isolation', () => this.reevaluate());
    }
  }

  private lastSignature = '';

  /** Emit 'change' only when what Status shows changed (health, reason, roles, acting active, key_id). */
  private changed(): void {
    const s = this.status();
    const sig = JSON.stringify([s.keyId, s.healthy, s.reason, s.actingActive, s.pinned, s.providers.map((p) => [p.role, p.health.breaker])]);
    if (sig === this.lastSignature) return;
    this.lastSignature = sig;
    this.emit('change');
  }

  private readonly degraded: Record<string, Record<string, number>> = {};

  private event(e: KeyringEvent): void {
    if (e.type === 'degraded') {
      const byProvider = (this.degraded[formatKeyId(this.name, Buffer.from(e.generation, 'hex'))] ??= {});
      for (const p of e.missing) byProvider[p] = (byProvider[p] ?? 0) + 1;
    }
    this.onEvent?.(e);
  }

  /** Move the acting active if the breakers say so; emits 'change' on any health flip. */
  private reevaluate(): void {
    this.reevaluate0();
    this.changed();
  }

  /** The current write key_id, once every provider's current version is known (now or from the store). */
  get keyId(): string | undefined {
    return this.gen.keyId;
  }

  /** Ask every provider for its current version; recompute generation and key_id. Emits 'change'. */
  async refresh(signal: AbortSignal): Promise<void> {
    const results = await Promise.allSettled(this.providers.map((p) => this.call(p, 'describe', (s) => p.describe(s), signal)));
    const fresh = new Map<string, ProviderDescription>();
    const errors: KekError[] = [];
    results.forEach((r, i) => {
      const p = this.providers[i] as KekProvider;
      if (r.status === 'fulfilled') fresh.set(p.id, r.value);
      else errors.push(toKekError(r.reason));
    });
    await this.gen.update(fresh);
    // Also on a health flip alone (a keystore damaged under a running broker must be logged at once).
    this.changed();
    if (!this.gen.keyId && errors[0]) throw errors[0];
  }

  /** Probe every provider through its guard; feeds breakers (half-open trials too) and misconfiguration. */
  async probe(signal: AbortSignal): Promise<void> {
    await Promise.all(this.providers.map((p) => this.call(p, 'probe', (s) => p.probe(s), signal).catch(() => undefined)));
    this.reevaluate();
  }

  /**
   * One guarded provider call with its own timeout (`budgetMs`, capped by the caller's deadline). Records
   * misconfiguration for calls on the current key, and timing for metrics.
   */
  private async call<T>(p: KekProvider, op: 'wrap' | 'unwrap' | 'verify' | 'probe' | 'describe', fn: (s: AbortSignal) => Promise<T>, signal: AbortSignal, budgetMs = Infinity): Promise<T> {
    const s = boundedSignal(budgetMs, signal);
    const t0 = process.hrtime.bigint();
    const guard = this.guards.get(p.id) as ProviderGuard;
    try {
      const out = await guard.call(() => fn(s), s);
      if (op !== 'unwrap' && op !== 'verify') this.noteMisconfig(p.id, undefined);
      if (op === 'wrap' || op === 'unwrap' || op === 'verify') this.onProviderCall?.({ provider: p.id, op, result: 'ok', seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
      return out;
    } catch (e) {
      const err = toKekError(e);
      if (op !== 'unwrap' && op !== 'verify') this.noteMisconfig(p.id, err);
      if (op === 'wrap' || op === 'unwrap' || op === 'verify') this.onProviderCall?.({ provider: p.id, op, result: err.code, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
      throw err;
    }
  }

  private noteMisconfig(id: string, err: KekError | undefined): void {
    if (this.misconfig.record(id, err)) {
      this.event({ type: 'misconfigured', keyring: this.name, provider: id, reason: this.misconfig.get(id)?.message });
      this.reevaluate();
    }
  }

  status(): KeyringStatus {
    this.reevaluate0();
    const acting = this.acting.id;
    const health = new Map(this.providers.map((p) => [p.id, providerHealth(this.guards.get(p.id) as ProviderGuard, this.misconfig.get(p.id))] as const));
    const up = this.providers.filter((p) => health.get(p.id)?.up && !health.get(p.id)?.misconfigured);
    const actingHealth = health.get(acting) as ProviderHealth;
    let reason = 'ok';
    if (!this.gen.keyId) reason = `key_id unknown: ${this.gen.missing().join(', ')} never described its current key version (and no saved version refs); see docs/operations.md "first start with a provider down"`;
    else if (actingHealth.misconfigured) reason = refusingReason(this.name, acting, this.gen.ref(acting), actingHealth.misconfigured, this.providers.map((p) => p.id).find((id) => id !== acting && health.get(id)?.up));
    else if (up.length === 0) reason = `every provider of keyring ${this.name} is down or isolated (${this.providers.map((p) => `${p.id}: ${health.get(p.id)?.reason}`).join('; ')})`;
    else if (up.length < this.minWraps) reason = `only ${up.length} provider(s) up (${up.map((p) => p.id).join(', ')}), minWraps is ${this.minWraps}`;
    else if (!actingHealth.up) reason = `acting active ${acting} is down (${actingHealth.reason}) and no other provider is eligible`;
    return {
      keyring: this.name,
      keyId: this.gen.keyId,
      healthy: reason === 'ok',
      reason,
      configuredActive: this.acting.configured,
      actingActive: acting,
      pinned: this.acting.pinned !== undefined,
      holdDownSeconds: this.acting.holdDownMs / 1000,
      degradedEnvelopes: structuredClone(this.degraded),
      providers: this.providers.map((p) => {
        const h = health.get(p.id) as ProviderHealth;
        const role = h.isolated ? 'isolated' : !h.up ? 'down' : h.misconfigured ? 'refusing' : p.id === acting ? 'active' : 'passive';
        return {
          id: p.id, type: p.type, role, currentVersionRef: this.gen.ref(p.id), versionRefFromStore: this.gen.fromStore(p.id),
          holdDownLeftSeconds: Math.ceil(this.acting.holdDownLeftMs(p.id) / 1000), health: h,
        };
      }),
    };
  }

  /** Time-based failback happens without a breaker event: evaluate on every status read and wrap. */
  private reevaluate0(): void {
    const change = this.acting.evaluate((id) => this.misconfig.get(id) !== undefined);
    if (change) this.event({ type: 'acting-active', keyring: this.name, change });
  }

  /** Operator: make `provider` the acting active (pin: until failback). */
  failover(provider: string, pin: boolean): ActingChange | undefined {
    if (!this.byId.has(provider)) throw new KekError('not-found', `provider "${provider}" is not in keyring "${this.name}" (providers: ${[...this.byId.keys()].join(', ')})`);
    const change = this.acting.failover(provider, pin);
    if (change) this.event({ type: 'acting-active', keyring: this.name, change });
    this.changed();
    return change;
  }

  /** Operator: release a pin and return to the first healthy provider in configured order now. */
  failback(): ActingChange | undefined {
    const change = this.acting.failback();
    if (change) this.event({ type: 'acting-active', keyring: this.name, change });
    this.changed();
    return change;
  }

  private ctx(tenant: string): WrapContext {
    return { tenant, keyring: this.name, envelopeVersion: ENVELOPE_VERSION };
  }

  async wrap(tenant: string, plaintext: Uint8Array, signal: AbortSignal): Promise<WrapResult> {
    const generation = this.gen.generation;
    if (!generation || !this.gen.keyId) throw new KekError('unavailable', `keyring ${this.name} is not ready: ${this.status().reason}`);
    this.reevaluate0();
    const sealed = await sealEnvelope({
      keyring: this.name, tenant, plaintext, signal, ctx: this.ctx(tenant), policy: this.policy,
      providers: this.providers, acting: this.acting.id, generation: () => this.gen.generation as Buffer,
      call: (p, op, fn, s, budget) => this.call(p, op, fn, s, budget),
      guard: (id) => this.guards.get(id) as ProviderGuard,
      versionMoved: (wraps) => wraps.some((w) => this.gen.ref(w.providerId) !== w.keyVersionRef),
      refresh: (s) => this.refresh(s),
      event: (e) => this.event(e),
    });
    // The broker saw this plaintext: cache it so other apiservers' Decrypts of this seed never reach a KMS.
    this.cache.put(cacheKey(tenant, sealed.ciphertext), { tenant, keyring: this.name, generation: sealed.generation.toString('hex') }, plaintext);
    return { ciphertext: sealed.ciphertext, keyId: formatKeyId(this.name, sealed.generation) };
  }

  /** `signal` may be a maker (core SignalSource): a cache hit answers without making a deadline. */
  async unwrap(tenant: string, ciphertext: Uint8Array, signal: SignalSource, expectedKeyId?: string): Promise<UnwrapResult> {
    const env = decodeEnvelope(ciphertext);
    if (env.keyring !== this.name) throw new KekError('invalid-input', `envelope belongs to keyring "${env.keyring}", not "${this.name}"`);
    const keyId = formatKeyId(env.keyring, env.generation);
    if (expectedKeyId !== undefined && expectedKeyId !== '' && expectedKeyId !== keyId) {
      throw new KekError('invalid-input', 'key_id does not match the generation recorded in the ciphertext');
    }
    const stale = keyId !== this.gen.keyId;
    if (stale) {
      const retired = this.retiredReason?.(keyId);
      if (retired) throw new KekError('not-found', retired);
    }
    const ck = cacheKey(tenant, ciphertext);
    // L1, L2, then one KMS call per envelope across the fleet; the result is ours (core/secrets.ts).
    const got = await this.cache.getOrLoad(ck, { tenant, keyring: this.name, generation: Buffer.from(env.generation).toString('hex') }, signal, (shared) => this.unwrapUncached(tenant, env, shared ?? signalOf(signal)));
    return { plaintext: got.plaintext, keyId, stale, cached: got.cached, servedStale: got.stale };
  }

  private unwrapUncached(tenant: string, env: ReturnType<typeof decodeEnvelope>, signal: AbortSignal): Promise<Buffer> {
    throwIfAborted(signal, 'unwrap');
    const acting = this.acting.id;
    const order = (id: string): number => (id === acting ? 0 : this.guards.get(id)?.healthy ? 1 : 2) * 100 + this.providers.findIndex((p) => p.id === id);
    return openEnvelope({
      keyring: this.name, tenant, env, signal, ctx: this.ctx(tenant), policy: this.policy,
      providers: env.wraps.filter((w) => this.byId.has(w.providerId)).sort((a, b) => order(a.providerId) - order(b.providerId)),
      provider: (id) => this.byId.get(id) as KekProvider,
      call: (p, op, fn, s, budget) => this.call(p, op, fn, s, budget),
      guard: (id) => this.guards.get(id) as ProviderGuard,
      event: (e) => this.event(e),
    });
  }

  providerHealth(id: string): ProviderHealth {
    return providerHealth(this.guards.get(id) as ProviderGuard, this.misconfig.get(id));
  }

  /** Rotate every provider (new primary version), then move the keyring to the new generation. */
  async rotate(signal: AbortSignal): Promise<string> {
    const fresh = new Map<string, ProviderDescription>();
    for (const p of this.providers) {
      throwIfAborted(signal, 'rotate');
      fresh.set(p.id, await p.rotate(signal));
    }
    await this.gen.update(fresh);
    await this.refresh(signal);
    if (!this.gen.keyId) throw new KekError('internal', 'rotation left the keyring without a key_id');
    return this.gen.keyId;
  }
}

function refusingReason(keyring: string, provider: string, ref: string, problem: string, next: string | undefined): string {
  const fix = next
    ? `re-enable the key or restore the broker's grant on it, or fail over explicitly: POST /v1/admin/keyrings/${keyring}/failover {"provider":"${next}","pin":true}`
    : 're-enable the key or restore the broker\'s grant on it';
  return `acting active ${provider} refuses key ${ref || '(unknown version)'}: ${problem}. The key is disabled, deleted or not granted to the broker; the keyring does not fail over on its own (a disabled key may be a deliberate kill switch). Fix: ${fix}`;
}

/** Cache key: a hash, so the cache map never holds the ciphertext itself or lets one tenant hit another's entry. */
export function cacheKey(tenant: string, ciphertext: Uint8Array): string {
  return createHash('sha256').update(tenant).update('\0').update(ciphertext).digest('base64');
}

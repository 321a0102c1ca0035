/**
 * KeyCache: the one object a keyring calls to cache unwrapped payloads.
 *   L1 (in process) -> shared L2 + fleet-wide single-flight (Redis, when configured and usable) -> load (KMS).
 * Concurrent misses in this process share one flight; across replicas the SharedCache adds a Redis lock.
 * When the load fails because the KMS is unavailable, timing out or throttling, an entry past its TTL but
 * inside cache.maxStaleSeconds is served instead (counted and logged). A revoked generation is never served
 * from any cache, fresh or stale.
 *
 * Ownership (core/secrets.ts): getOrLoad returns a buffer the caller owns; put copies what it keeps.
 */
import { signalOf, toKekError, zeroize, type ErrorCode, type SignalSource } from '@kekbroker/core';
import type { L1Cache } from './l1';
import { SingleFlight } from './single-flight';

export interface KeyCacheEntryMeta { tenant: string; keyring: string; generation: string /* hex of the envelope generation */ }

export interface KeyCache {
  /** L1, then L2 (if any), then `load` under single-flight (process-wide and, with Redis, fleet-wide).
   *  On a load failure of class unavailable/timeout/throttled, may serve an expired entry within maxStale (stale: true).
   *  Returns a buffer the caller owns (core/secrets.ts). `signal` may be a maker: an L1 hit never calls it. */
  getOrLoad(key: string, meta: KeyCacheEntryMeta, signal: SignalSource, load: LoadFn): Promise<{ plaintext: Buffer; cached: boolean; stale: boolean }>;
  /** Store a copy (the caller keeps ownership of `plaintext`). */
  put(key: string, meta: KeyCacheEntryMeta, plaintext: Uint8Array): void;
}

/**
 * Loads a key (the KMS call). A shared load gets a signal that aborts only once EVERY caller waiting on it has
 * given up, so the first caller's deadline does not abandon a call that later callers still wait for (an
 * abandoned call would be made again: one more KMS call). `() => ...` ignoring it is fine too.
 */
export type LoadFn = (signal?: AbortSignal) => Promise<Buffer>;

/** The Redis side (packages/ha implements it). */
export interface SharedCache {
  /** False while Redis is unreachable or this keyring's sealing key is not open here: the cache runs on L1 alone. */
  available(keyring: string): boolean;
  /** Read L2; on a miss run `load` under a fleet-wide lock (or wait for the replica that holds it). Caller owns the result. */
  getOrLoad(key: string, meta: KeyCacheEntryMeta, signal: AbortSignal, load: LoadFn): Promise<{ plaintext: Buffer; source: 'l2' | 'load' }>;
  /** Seal a copy now and store it in the background (best effort). */
  put(key: string, meta: KeyCacheEntryMeta, plaintext: Uint8Array): void;
}

/** What to drop: every entry of a keyring, of one tenant in it, or of one generation (revoked: never served again). */
export interface Invalidation { keyring: string; tenant?: string; generation?: string; revoke?: boolean }

/**
 * The tenant under which the cache-sealing key itself is wrapped by a keyring (the AAD binds it, like any
 * wrap). Reserved: the config loader refuses a tenant of this name. Never cached.
 */
export const CACHE_SEALING_TENANT = 'kekbroker-cache-sealing';

const STALE_SERVABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['unavailable', 'timeout', 'throttled']);

export interface KeyCacheOptions {
  l1: L1Cache;
  /** 0 = never serve stale. */
  maxStaleMs: number;
  shared?: SharedCache;
  /** Told about every stale answer (metrics + a warning log). No key material is passed. */
  onStale?: (meta: KeyCacheEntryMeta, cause: string) => void;
}

interface Loaded { plaintext: Buffer; source: 'l2' | 'load' }

export class DefaultKeyCache implements KeyCache {
  readonly l1: L1Cache;
  readonly counters = { l2Hits: 0, loads: 0, staleServed: 0 };
  private readonly revoked = new Set<string>();
  /** Per cache key in flight: the joint deadline of every caller waiting on it. */
  private readonly joints = new Map<string, { ctl: AbortController; live: number }>();
  /** One flight per cache key in this process; every waiter gets its own copy, the shared result is zeroed after. */
  private readonly flights = new SingleFlight<Loaded>((v) => ({ plaintext: Buffer.from(v.plaintext), source: v.source }), (v) => zeroize(v.plaintext));

  constructor(private readonly opts: KeyCacheOptions) {
    this.l1 = opts.l1;
  }

  get pendingFlights(): number {
    return this.flights.pending;
  }

  isRevoked(keyring: string, generation: string): boolean {
    return this.revoked.has(`${keyring}/${generation}`);
  }

  async getOrLoad(key: string, meta: KeyCacheEntryMeta, source: SignalSource, load: LoadFn): Promise<{ plaintext: Buffer; cached: boolean; stale: boolean }> {
    if (!this.cacheable(meta)) {
      this.counters.loads++;
      return { plaintext: await load(signalOf(source)), cached: false, stale: false };
    }
    const hit = this.l1.get(key);
    if (hit) return { plaintext: hit, cached: true, stale: false };
    const signal = signalOf(source);
    const joint = this.joinDeadline(key, signal);
    try {
      const got = await this.flights.run(key, async () => {
        const shared = this.opts.shared;
        const countedLoad = (): Promise<Buffer> => {
          this.counters.loads++;
          return load(joint.signal);
        };
        try {
          const r: Loaded = shared?.available(meta.keyring) ? await shared.getOrLoad(key, meta, joint.signal, countedLoad) : { plaintext: await countedLoad(), source: 'load' };
          if (r.source === 'l2') this.counters.l2Hits++;
          // A revocation may have arrived while we loaded: do not keep what it revoked.
          if (this.cacheable(meta)) this.l1.set(key, meta, r.plaintext);
          return r;
        } finally {
          this.joints.delete(key);
        }
      });
      return { plaintext: got.plaintext, cached: got.source === 'l2', stale: false };
    } catch (e) {
      const err = toKekError(e);
      if (this.opts.maxStaleMs > 0 && STALE_SERVABLE.has(err.code) && this.cacheable(meta)) {
        const old = this.l1.getStale(key);
        if (old) {
          this.counters.staleServed++;
          this.opts.onStale?.(meta, err.code);
          return { plaintext: old.value, cached: true, stale: true };
        }
      }
      throw e;
    } finally {
      joint.leave();
    }
  }

  /**
   * The signal a shared load runs under for `key`: it aborts when the last caller still waiting has given up.
   * Each caller joins with its own signal and leaves when it is answered.
   */
  private joinDeadline(key: string, signal: AbortSignal): { signal: AbortSignal; leave(): void } {
    let j = this.joints.get(key);
    if (!j) this.joints.set(key, (j = { ctl: new AbortController(), live: 0 }));
    const joint = j;
    joint.live++;
    let left = false;
    const leave = (): void => {
      if (left) return;
      left = true;
      signal.removeEventListener('abort', onAbort);
      joint.live--;
    };
    const onAbort = (): void => {
      const last = joint.live === 1;
      leave();
      if (last) joint.ctl.abort(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    return { signal: joint.ctl.signal, leave };
  }

  put(key: string, meta: KeyCacheEntryMeta, plaintext: Uint8Array): void {
    if (!this.cacheable(meta)) return;
    this.l1.set(key, meta, plaintext);
    if (this.opts.shared?.available(meta.keyring)) this.opts.shared.put(key, meta, plaintext);
  }

  /** Apply an invalidation here (the HA bus calls this on every replica). Returns the L1 entries dropped. */
  invalidate(inv: Invalidation): number {
    if (inv.revoke && inv.generation) this.revoked.add(`${inv.keyring}/${inv.generation}`);
    return this.l1.deleteWhere((m) => m.keyring === inv.keyring && (inv.tenant === undefined || m.tenant === inv.tenant) && (inv.generation === undefined || m.generation === inv.generation));
  }

  clear(): void {
    this.l1.clear();
  }

  private cacheable(meta: KeyCacheEntryMeta): boolean {
    return meta.tenant !== CACHE_SEALING_TENANT && !this.isRevoked(meta.keyring, meta.generation);
  }
}

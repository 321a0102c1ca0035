/**
 * L1: the in-process cache of unwrapped payloads, on lru-cache. Bounded three ways: entries, bytes of key
 * material, and a per-tenant share of both (one noisy tenant cannot evict everyone else's keys).
 *
 * Values are key material (core/secrets.ts): the cache stores its own compact copy, hands out copies, and
 * zeroes its copy whenever lru-cache lets go of it (eviction, expiry, delete, overwrite, clear).
 * Memory: at 100k seeds the bookkeeping, not the 32 bytes, is the cost. So a small value (a seed) is stored in
 * the cache's own slabs (slabs.ts) and lru-cache holds only its slot NUMBER: no entry object, no Buffer view per
 * entry; length, freshness and metadata live in the slab's typed arrays, and the metadata objects are interned
 * per tenant (thousands of entries share one { tenant, keyring, generation }). Larger values get one object
 * with their own unpooled allocation.
 *
 * An entry is fresh for ttlMs; with maxStaleMs > 0 it is kept that much longer and may be served as stale,
 * but only by KeyCache and only when the KMS itself failed (unavailable/timeout/throttled).
 */
import { LRUCache } from 'lru-cache';
import type { KeyCacheEntryMeta } from './key-cache';
import { SLOT_BYTES, SmallValueSlabs } from './slabs';

export interface L1Options {
  /** 0 disables L1 (every get misses, set is a no-op). */
  maxEntries: number;
  /** Bound on the sum of cached plaintext bytes (plus a fixed per-entry overhead). */
  maxBytes: number;
  ttlMs: number;
  /** Keep entries this long past ttlMs for stale serving. */
  maxStaleMs?: number;
  /** Largest share (0..1] of maxEntries and maxBytes one tenant may hold. */
  perTenantMaxFraction?: number;
}

/** A value larger than a slot: its own allocation. */
interface LargeEntry {
  meta: KeyCacheEntryMeta;
  value: Buffer;
  freshUntil: number;
}

/** What lru-cache holds: a slab slot number (small values) or a large entry. */
type Stored = number | LargeEntry;

/** Per tenant: entries and accounted bytes, and its interned metadata objects (by keyring and generation). */
interface TenantUse {
  entries: number;
  bytes: number;
  metas: Map<string, KeyCacheEntryMeta>;
}

/** Accounted per entry on top of the value: key string, lru-cache bookkeeping (a bound, not a measurement). */
export const ENTRY_OVERHEAD_BYTES = 200;

export class L1Cache {
  private readonly lru: LRUCache<string, Stored> | undefined;
  private readonly ttlMs: number;
  /** With a share of 1 the global bounds (lru-cache's own eviction) are the tenant bounds. */
  private readonly tenantCapped: boolean;
  private readonly tenantCap: { entries: number; bytes: number };
  private readonly tenants = new Map<string, TenantUse>();
  private readonly slabs = new SmallValueSlabs<KeyCacheEntryMeta>();
  hits = 0;
  misses = 0;

  constructor(opts: L1Options) {
    /* Precondition: you cannot cache key material forever, and a bound must be a number. */
    if (!(opts.ttlMs > 0)) throw new Error('L1Cache needs a positive ttlMs');
    if (!(opts.maxEntries >= 0) || !(opts.maxBytes >= 0)) throw new Error('L1Cache needs maxEntries >= 0 and maxBytes >= 0');
    this.ttlMs = opts.ttlMs;
    const fraction = opts.perTenantMaxFraction ?? 1;
    this.tenantCapped = fraction < 1;
    this.tenantCap = { entries: Math.max(1, Math.floor(opts.maxEntries * fraction)), bytes: Math.max(1, Math.floor(opts.maxBytes * fraction)) };
    if (opts.maxEntries === 0 || opts.maxBytes === 0) return;
    this.lru = new LRUCache<string, Stored>({
      max: opts.maxEntries,
      maxSize: opts.maxBytes,
      sizeCalculation: (v) => this.length(v) + ENTRY_OVERHEAD_BYTES,
      ttl: opts.ttlMs + (opts.maxStaleMs ?? 0),
      // lru-cache's TTL is ttlMs + maxStaleMs; freshness (ttlMs) is checked here, so a stale-window entry is
      // still there for getStale(), which KeyCache uses only after a failed load.
      dispose: (v) => this.forget(v),
    });
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  /** Bytes accounted (plaintext + overhead). */
  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  /** A copy of a fresh value, or undefined. The caller owns (and zeroes) the copy. */
  get(key: string): Buffer | undefined {
    const v = this.lru?.get(key);
    if (v === undefined || this.freshUntil(v) <= Date.now()) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return this.copy(v);
  }

  /** A copy of a value past its TTL but inside the stale window (for KeyCache's stale serving), or undefined. */
  getStale(key: string): { value: Buffer; meta: KeyCacheEntryMeta } | undefined {
    const v = this.lru?.peek(key, { allowStale: false });
    if (v === undefined) return undefined;
    const m = this.meta(v);
    return { value: this.copy(v), meta: { tenant: m.tenant, keyring: m.keyring, generation: m.generation } };
  }

  /** Store a compact copy; `value` stays the caller's. */
  set(key: string, meta: KeyCacheEntryMeta, value: Uint8Array): void {
    if (!this.lru) return;
    const size = value.length + ENTRY_OVERHEAD_BYTES;
    if (size > this.tenantCap.bytes) return; // larger than a tenant may ever hold: not cached
    if (this.tenantCapped) this.makeRoomFor(meta.tenant, key, size);
    const t = this.tenant(meta.tenant);
    const m = this.intern(t, meta);
    const freshUntil = Date.now() + this.ttlMs;
    let stored: Stored;
    if (value.length <= SLOT_BYTES) {
      stored = this.slabs.store(value, m, freshUntil);
    } else {
      const own = Buffer.allocUnsafeSlow(value.length);
      own.set(value);
      stored = { meta: m, value: own, freshUntil };
    }
    // Counted before set(): an overwrite disposes the old value (and uncounts it) inside set().
    t.entries++;
    t.bytes += size;
    this.lru.set(key, stored);
  }

  delete(key: string): void {
    this.lru?.delete(key);
  }

  /** Drop every entry matching `pred` (invalidation: a keyring, a tenant, a revoked generation). */
  deleteWhere(pred: (meta: KeyCacheEntryMeta) => boolean): number {
    if (!this.lru) return 0;
    const doomed: string[] = [];
    // lru-cache's own TTL covers ttlMs + maxStaleMs, so entries() includes the stale window too.
    for (const [k, v] of this.lru.entries()) if (pred(this.meta(v))) doomed.push(k);
    for (const k of doomed) this.lru.delete(k);
    return doomed.length;
  }

  clear(): void {
    this.lru?.clear();
  }

  tenantBytes(tenant: string): number {
    return this.tenants.get(tenant)?.bytes ?? 0;
  }

  private length(v: Stored): number {
    return typeof v === 'number' ? this.slabs.length(v) : v.value.length;
  }

  private freshUntil(v: Stored): number {
    return typeof v === 'number' ? this.slabs.freshUntil(v) : v.freshUntil;
  }

  private meta(v: Stored): KeyCacheEntryMeta {
    return typeof v === 'number' ? this.slabs.meta(v) : v.meta;
  }

  private copy(v: Stored): Buffer {
    return typeof v === 'number' ? this.slabs.copy(v) : Buffer.from(v.value);
  }

  private tenant(name: string): TenantUse {
    let t = this.tenants.get(name);
    if (!t) this.tenants.set(name, (t = { entries: 0, bytes: 0, metas: new Map() }));
    return t;
  }

  /** One shared metadata object per (tenant, keyring, generation) in use. */
  private intern(t: TenantUse, meta: KeyCacheEntryMeta): KeyCacheEntryMeta {
    const k = `${meta.keyring}\0${meta.generation}`;
    let m = t.metas.get(k);
    if (!m) t.metas.set(k, (m = Object.freeze({ tenant: meta.tenant, keyring: meta.keyring, generation: meta.generation })));
    return m;
  }

  /** Evict the tenant's least recently used entries until one more of `size` fits in its share. */
  private makeRoomFor(tenant: string, key: string, size: number): void {
    const t = this.tenants.get(tenant);
    if (!t || !this.lru) return;
    const own = this.lru.peek(key, { allowStale: true });
    if (own !== undefined && this.meta(own).tenant === tenant) this.lru.delete(key);
    let entries = t.entries;
    let bytes = t.bytes;
    const fits = (): boolean => entries + 1 <= this.tenantCap.entries && bytes + size <= this.tenantCap.bytes;
    if (fits()) return;
    // Least recently used first; stops as soon as the entry fits (when this tenant dominates the cache its
    // oldest entries are at the LRU end, so this is short). Deleted after the walk, not during it.
    const doomed: string[] = [];
    for (const k of this.lru.rkeys()) {
      const v = this.lru.peek(k, { allowStale: true });
      if (v === undefined || this.meta(v).tenant !== tenant) continue;
      doomed.push(k);
      entries--;
      bytes -= this.length(v) + ENTRY_OVERHEAD_BYTES;
      if (fits()) break;
    }
    for (const k of doomed) this.lru.delete(k);
  }

  /** lru-cache let go of a value: zero it, free its slot, uncount it. */
  private forget(v: Stored): void {
    const meta = this.meta(v);
    const size = this.length(v) + ENTRY_OVERHEAD_BYTES;
    if (typeof v === 'number') this.slabs.release(v);
    else v.value.fill(0);
    const t = this.tenants.get(meta.tenant);
    if (!t) return;
    t.entries--;
    t.bytes -= size;
    if (t.entries <= 0) this.tenants.delete(meta.tenant);
  }
}

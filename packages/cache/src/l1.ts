/**
 * L1: the in-process cache of unwrapped payloads, on lru-cache. Bounded three ways: entries, bytes of key
 * material, and a per-tenant share of both (one noisy tenant cannot evict everyone else's keys).
 *
 * Values are key material (core/secrets.ts): the cache stores its own compact copy, hands out copies, and
 * zeroes its copy whenever lru-cache lets go of it (eviction, expiry, delete, overwrite, clear).
 * Small values (seeds) live in the cache's own slabs (slabs.ts): no per-value ArrayBuffer, and no copy that
 * pins one of Node's shared 8 KiB pool slabs.
 *
 * An entry is fresh for ttlMs; with maxStaleMs > 0 it is kept that much longer and may be served as stale,
 * but only by KeyCache and only when the KMS itself failed (unavailable/timeout/throttled).
 */
import { LRUCache } from 'lru-cache';
import type { KeyCacheEntryMeta } from './key-cache';
import { SmallValueSlabs, type SlotRef } from './slabs';

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

interface Entry extends KeyCacheEntryMeta {
  value: Buffer;
  slot: SlotRef | undefined;
  freshUntil: number;
}

/** Accounted per entry on top of the value: key string, entry object, lru-cache bookkeeping. */
export const ENTRY_OVERHEAD_BYTES = 200;

export class L1Cache {
  private readonly lru: LRUCache<string, Entry> | undefined;
  private readonly ttlMs: number;
  /** With a share of 1 the global bounds (lru-cache's own eviction) are the tenant bounds. */
  private readonly tenantCapped: boolean;
  private readonly tenantCap: { entries: number; bytes: number };
  /** Per tenant: its keys and its accounted bytes. */
  private readonly tenants = new Map<string, { keys: Set<string>; bytes: number }>();
  private readonly slabs = new SmallValueSlabs();
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
    this.lru = new LRUCache<string, Entry>({
      max: opts.maxEntries,
      maxSize: opts.maxBytes,
      sizeCalculation: (e) => e.value.length + ENTRY_OVERHEAD_BYTES,
      ttl: opts.ttlMs + (opts.maxStaleMs ?? 0),
      // lru-cache's TTL is ttlMs + maxStaleMs; freshness (ttlMs) is checked here, so a stale-window entry is
      // still there for getStale(), which KeyCache uses only after a failed load.
      dispose: (e, key) => this.forget(key, e),
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
    const e = this.lru?.get(key);
    if (!e || e.freshUntil <= Date.now()) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return Buffer.from(e.value);
  }

  /** A copy of a value past its TTL but inside the stale window (for KeyCache's stale serving), or undefined. */
  getStale(key: string): { value: Buffer; meta: KeyCacheEntryMeta } | undefined {
    const e = this.lru?.peek(key, { allowStale: false });
    if (!e) return undefined;
    return { value: Buffer.from(e.value), meta: { tenant: e.tenant, keyring: e.keyring, generation: e.generation } };
  }

  /** Store a compact copy; `value` stays the caller's. */
  set(key: string, meta: KeyCacheEntryMeta, value: Uint8Array): void {
    if (!this.lru) return;
    const size = value.length + ENTRY_OVERHEAD_BYTES;
    if (size > this.tenantCap.bytes) return; // larger than a tenant may ever hold: not cached
    if (this.tenantCapped) this.makeRoomFor(meta.tenant, key, size);
    const { buf, slot } = this.slabs.store(value);
    this.lru.set(key, { tenant: meta.tenant, keyring: meta.keyring, generation: meta.generation, value: buf, slot, freshUntil: Date.now() + this.ttlMs });
    const t = this.tenants.get(meta.tenant) ?? { keys: new Set<string>(), bytes: 0 };
    t.keys.add(key);
    t.bytes += size;
    this.tenants.set(meta.tenant, t);
  }

  delete(key: string): void {
    this.lru?.delete(key);
  }

  /** Drop every entry matching `pred` (invalidation: a keyring, a tenant, a revoked generation). */
  deleteWhere(pred: (meta: KeyCacheEntryMeta) => boolean): number {
    if (!this.lru) return 0;
    const doomed: string[] = [];
    // lru-cache's own TTL covers ttlMs + maxStaleMs, so entries() includes the stale window too.
    for (const [k, e] of this.lru.entries()) if (pred(e)) doomed.push(k);
    for (const k of doomed) this.lru.delete(k);
    return doomed.length;
  }

  clear(): void {
    this.lru?.clear();
  }

  tenantBytes(tenant: string): number {
    return this.tenants.get(tenant)?.bytes ?? 0;
  }

  /** Evict the tenant's least recently used entries until one more of `size` fits in its share. */
  private makeRoomFor(tenant: string, key: string, size: number): void {
    const t = this.tenants.get(tenant);
    if (!t || !this.lru) return;
    if (t.keys.has(key)) this.lru.delete(key);
    let entries = t.keys.size;
    let bytes = t.bytes;
    const fits = (): boolean => entries + 1 <= this.tenantCap.entries && bytes + size <= this.tenantCap.bytes;
    if (fits()) return;
    // Least recently used first; stops as soon as the entry fits (when this tenant dominates the cache its
    // oldest entries are at the LRU end, so this is short). Deleted after the walk, not during it.
    const doomed: string[] = [];
    for (const k of this.lru.rkeys()) {
      if (!t.keys.has(k)) continue;
      doomed.push(k);
      entries--;
      bytes -= (this.lru.peek(k)?.value.length ?? 0) + ENTRY_OVERHEAD_BYTES;
      if (fits()) break;
    }
    for (const k of doomed) this.lru.delete(k);
  }

  private forget(key: string, e: Entry): void {
    e.value.fill(0);
    if (e.slot) this.slabs.release(e.slot);
    const t = this.tenants.get(e.tenant);
    if (!t || !t.keys.delete(key)) return;
    t.bytes -= e.value.length + ENTRY_OVERHEAD_BYTES;
    if (t.keys.size === 0) this.tenants.delete(e.tenant);
  }
}

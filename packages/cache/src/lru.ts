/**
 * L1: a bounded in-process LRU of unwrapped payloads with a TTL. Values are key material: the cache keeps
 * its own copy, hands out copies, and zeroes a value when it is evicted, expires, is deleted or cleared.
 * A Map keeps insertion order, so "move to the back on hit, evict from the front" is an LRU.
 */
export interface LruOptions {
  /** 0 disables the cache (every get misses, set is a no-op). */
  maxEntries: number;
  ttlMs: number;
  now?: () => number;
}

interface Entry {
  value: Buffer;
  expires: number;
}

export class LruCache {
  private readonly map = new Map<string, Entry>();
  private readonly now: () => number;
  hits = 0;
  misses = 0;

  constructor(private readonly opts: LruOptions) {
    /* Precondition: you cannot cache key material forever. */
    if (!(opts.ttlMs > 0)) throw new Error('LruCache needs a positive ttlMs');
    if (!(opts.maxEntries >= 0)) throw new Error('LruCache needs maxEntries >= 0');
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.map.size;
  }

  /** A copy of the cached value, or undefined. The caller owns (and zeroes) the copy. */
  get(key: string): Buffer | undefined {
    const e = this.map.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    if (e.expires <= this.now()) {
      this.drop(key, e);
      this.misses++;
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, e);
    this.hits++;
    return Buffer.from(e.value);
  }

  set(key: string, value: Uint8Array): void {
    if (this.opts.maxEntries === 0) return;
    const old = this.map.get(key);
    if (old) this.drop(key, old);
    this.map.set(key, { value: Buffer.from(value), expires: this.now() + this.opts.ttlMs });
    while (this.map.size > this.opts.maxEntries) {
      const first = this.map.entries().next().value;
      if (!first) break;
      this.drop(first[0], first[1]);
    }
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (e) this.drop(key, e);
  }

  clear(): void {
    for (const [k, e] of this.map) this.drop(k, e);
  }

  private drop(key: string, e: Entry): void {
    e.value.fill(0);
    this.map.delete(key);
  }
}

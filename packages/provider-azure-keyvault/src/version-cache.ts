/**
 * Crypto clients of old key versions, for unwraps: bounded (least recently used goes first), one load at a
 * time per version (concurrent unwraps of a cold version make one vault read), failures not cached (the
 * next unwrap asks again).
 */
export class VersionCache<T> {
  private readonly entries = new Map<string, Promise<T>>();

  constructor(private readonly capacity: number) {}

  /** The cached entry for `version`, or the result of `load()`, which is then kept if it succeeds. */
  get(version: string, load: () => Promise<T>): Promise<T> {
    let p = this.entries.get(version);
    if (!p) {
      const loading = load();
      loading.catch(() => {
        if (this.entries.get(version) === loading) this.entries.delete(version);
      });
      p = loading;
    }
    this.put(version, p);
    return p;
  }

  /** Insert or refresh as most recently used, evicting the least recently used beyond capacity. */
  put(version: string, p: Promise<T>): void {
    this.entries.delete(version);
    this.entries.set(version, p);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  delete(version: string): void {
    this.entries.delete(version);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}

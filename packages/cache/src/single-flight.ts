/**
 * Coalesce concurrent work for one key: while a call for `key` is in flight, later callers share its
 * promise instead of making their own KMS call. (Across replicas this becomes a Redis lock: see L2.)
 */
export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  get pending(): number {
    return this.inflight.size;
  }

  run(key: string, fn: () => Promise<T>): Promise<T> {
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}

/**
 * Coalesce concurrent work for one key: while a call for `key` is in flight, later callers wait for its result
 * instead of making their own KMS call. (Across replicas this becomes a Redis lock: see L2.)
 */
import { zeroize } from '@kekbroker/core';

interface Flight<T> {
  waiters: Array<{ resolve(v: T): void; reject(e: unknown): void }>;
}

export class SingleFlight<T> {
  private readonly inflight = new Map<string, Flight<T>>();

  /**
   * @param share gives each waiter its own value from the shared result (for key material: a copy).
   * @param release called once on the shared result after every waiter has had its share (for key material: zeroize).
   */
  constructor(
    private readonly share: (v: T) => T = (v) => v,
    private readonly release: (v: T) => void = () => undefined,
  ) {}

  get pending(): number {
    return this.inflight.size;
  }

  run(key: string, fn: () => Promise<T>): Promise<T> {
    let flight = this.inflight.get(key);
    if (!flight) {
      const f: Flight<T> = { waiters: [] };
      flight = f;
      this.inflight.set(key, f);
      // Settle every waiter synchronously in one place, after taking the flight out of the map: nobody can join
      // once its result is shared out, so releasing (zeroing) the shared result cannot race a late joiner.
      fn().then(
        (v) => {
          this.inflight.delete(key);
          try {
            for (const w of f.waiters) w.resolve(this.share(v));
          } finally {
            this.release(v);
          }
        },
        (e: unknown) => {
          this.inflight.delete(key);
          for (const w of f.waiters) w.reject(e);
        },
      );
    }
    const joined = flight;
    return new Promise<T>((resolve, reject) => joined.waiters.push({ resolve, reject }));
  }
}

/** A single-flight for key material: every waiter gets its own copy, and the shared buffer is zeroed after. */
export function keyMaterialFlight(): SingleFlight<Buffer> {
  return new SingleFlight<Buffer>((v) => Buffer.from(v), (v) => zeroize(v));
}

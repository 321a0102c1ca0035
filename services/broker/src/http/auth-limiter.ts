/**
 * Failed admin authentications are limited per client address: after MAX_FAILURES failures within
 * WINDOW_MS, every request from that address is answered 429 until the window ends, a correct token
 * included (else a guesser would still learn when it hit). Fixed windows in a bounded map: a flood of
 * spoofed-looking addresses evicts the oldest entries instead of growing memory.
 */
export const MAX_FAILURES = 10;
export const WINDOW_MS = 60_000;
const MAX_TRACKED = 10_000;

export class AuthFailureLimiter {
  private readonly byClient = new Map<string, { failures: number; windowEnds: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Milliseconds until `client` may try again, or 0 when it is not limited. */
  blockedFor(client: string): number {
    const e = this.byClient.get(client);
    if (!e) return 0;
    const left = e.windowEnds - this.now();
    if (left <= 0) {
      this.byClient.delete(client);
      return 0;
    }
    return e.failures >= MAX_FAILURES ? left : 0;
  }

  /** Record a failure; true when this one reached the limit (log it once). */
  fail(client: string): boolean {
    const t = this.now();
    let e = this.byClient.get(client);
    if (!e || e.windowEnds <= t) {
      this.byClient.delete(client);
      e = { failures: 0, windowEnds: t + WINDOW_MS };
      this.byClient.set(client, e);
      if (this.byClient.size > MAX_TRACKED) this.byClient.delete(this.byClient.keys().next().value as string);
    }
    e.failures++;
    return e.failures === MAX_FAILURES;
  }
}

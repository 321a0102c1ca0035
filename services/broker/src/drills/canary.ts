/**
 * Canary traffic for drills: wrap a fresh 32-byte seed, unwrap the result, compare, at a fixed rate, through
 * the broker's real data plane (authorization, keyring, providers, metrics, audit) as a configured tenant.
 * Every answer is checked against the seed it must be; a wrong answer counts as a failure.
 */
import { randomBytes } from 'node:crypto';
import { toKekError, zeroize } from '@kekbroker/core';
import type { BrokerService } from '../service';
import type { Sample } from './stats';

/** apiserver-like: every canary call has kube-apiserver's default KMS timeout. */
const CANARY_DEADLINE_MS = 3000;
/** Beyond this many canaries in flight a tick is recorded as failed instead of piling up. */
const MAX_IN_FLIGHT = 256;

export class Canary {
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private n = 0;
  private readonly settled = new Set<Promise<void>>();

  constructor(
    private readonly service: BrokerService,
    private readonly o: { drillId: string; tenant: string; keyring: string; perSecond: number; t0: number; record: (s: Sample) => void },
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), 1000 / this.o.perSecond);
  }

  /** Stop sending; resolves when the canaries in flight have answered. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.settled]);
  }

  private now(): number {
    return performance.now() - this.o.t0;
  }

  private tick(): void {
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.o.record({ t: this.now(), op: 'wrap', ms: 0, ok: false, error: 'canary-backlog' });
      return;
    }
    this.inFlight++;
    const p = this.once().finally(() => {
      this.inFlight--;
      this.settled.delete(p);
    });
    this.settled.add(p);
  }

  private async once(): Promise<void> {
    const id = `drill-${this.o.drillId}-${++this.n}`;
    const seed = randomBytes(32);
    const caller = { tenant: this.o.tenant, requestId: id, deadlineMs: CANARY_DEADLINE_MS };
    let t = performance.now();
    let wrapped;
    try {
      wrapped = await this.service.wrap(caller, this.o.keyring, seed);
      this.o.record({ t: this.now(), op: 'wrap', ms: performance.now() - t, ok: true });
    } catch (e) {
      this.o.record({ t: this.now(), op: 'wrap', ms: performance.now() - t, ok: false, error: toKekError(e).code });
      zeroize(seed);
      return;
    }
    t = performance.now();
    try {
      const out = await this.service.unwrap(caller, this.o.keyring, wrapped.ciphertext, wrapped.keyId);
      const right = out.plaintext.equals(seed);
      zeroize(out.plaintext); // given to us by the keyring (core/secrets.ts)
      this.o.record({ t: this.now(), op: 'unwrap', ms: performance.now() - t, ok: right, ...(right ? {} : { error: 'wrong-answer' }) });
    } catch (e) {
      this.o.record({ t: this.now(), op: 'unwrap', ms: performance.now() - t, ok: false, error: toKekError(e).code });
    } finally {
      zeroize(seed);
    }
  }
}

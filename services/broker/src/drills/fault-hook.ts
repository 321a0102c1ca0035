/**
 * A fault hook in front of a provider, for drills only: it adds latency, throttling or an outage to the calls
 * the broker makes, so an SRE can rehearse a cloud's bad day on a production fleet without touching the cloud.
 * It is off unless a drill turns it on (one field read per call), and a drill always turns it off at its end.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KekError, type KekProvider, type ProviderDescription, type WrapContext, type WrappedKey } from '@kekbroker/core';

export type DrillFault =
  | { kind: 'outage' }
  /** Every call waits `ms` first (within the caller's deadline). */
  | { kind: 'latency'; ms: number }
  /** This fraction of calls (0..1) fails as `throttled`, like a 429 from the cloud. */
  | { kind: 'throttle'; ratio: number };

export class FaultHookProvider implements KekProvider {
  private fault: DrillFault | undefined;

  constructor(private readonly inner: KekProvider) {}

  get id(): string {
    return this.inner.id;
  }

  get type(): string {
    return this.inner.type;
  }

  get startupNotice(): string | undefined {
    return this.inner.startupNotice;
  }

  /** The fault now in force, if any (shown in admin status). */
  get activeFault(): DrillFault | undefined {
    return this.fault;
  }

  set(fault: DrillFault | undefined): void {
    this.fault = fault;
  }

  private async inject(op: string, signal: AbortSignal): Promise<void> {
    const f = this.fault;
    if (!f) return;
    if (f.kind === 'outage') throw new KekError('unavailable', `drill: provider ${this.id} is in a simulated outage (${op})`, { provider: this.id });
    if (f.kind === 'throttle' && Math.random() < f.ratio) throw new KekError('throttled', `drill: provider ${this.id} is simulating throttling (${op})`, { provider: this.id });
    if (f.kind === 'latency') {
      await sleep(f.ms, undefined, { signal }).catch(() => {
        throw new KekError('timeout', `drill: ${op} on ${this.id} abandoned during simulated latency`, { provider: this.id });
      });
    }
  }

  async wrap(plaintext: Uint8Array, ctx: WrapContext, signal: AbortSignal): Promise<WrappedKey> {
    await this.inject('wrap', signal);
    return this.inner.wrap(plaintext, ctx, signal);
  }

  async unwrap(wrapped: WrappedKey, ctx: WrapContext, signal: AbortSignal): Promise<Buffer> {
    await this.inject('unwrap', signal);
    return this.inner.unwrap(wrapped, ctx, signal);
  }

  async rotate(signal: AbortSignal): Promise<ProviderDescription> {
    return this.inner.rotate(signal);
  }

  async describe(signal: AbortSignal): Promise<ProviderDescription> {
    return this.inner.describe(signal);
  }

  async probe(signal: AbortSignal): Promise<void> {
    await this.inject('probe', signal);
    return this.inner.probe(signal);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * A software provider for unit tests of keyring logic, with switchable failure, latency and lies, counting
 * calls. A boundary mock: the cross-process tests in test/ use the real SDKs against the cloud emulators.
 */
import { KekError, type KekProvider, type WrapContext, type WrappedKey } from '@kekbroker/core';

export class FakeProvider implements KekProvider {
  readonly type = 'fake';
  version = 1;
  calls = { wrap: 0, unwrap: 0, describe: 0 };
  fail: KekError | undefined;
  /** Answer after this long (aborted by the signal like a real SDK call). */
  delayMs = 0;
  /** Return a wrong key from unwrap (a provider answering corrupt bytes). */
  lie = false;
  constructor(readonly id: string) {}

  private async act(signal: AbortSignal | undefined): Promise<void> {
    if (this.delayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, this.delayMs);
        signal?.addEventListener('abort', () => {
          clearTimeout(t);
          reject(new KekError('timeout', `${this.id}: deadline exceeded`));
        }, { once: true });
      });
    }
    if (this.fail) throw this.fail;
  }

  async wrap(pt: Uint8Array, ctx: WrapContext, signal?: AbortSignal): Promise<WrappedKey> {
    this.calls.wrap++;
    const wrapped = Buffer.concat([Buffer.from(`${ctx.tenant}|`), Buffer.from(pt).map((b) => b ^ 0x5a)]);
    await this.act(signal);
    return { keyVersionRef: `${this.id}:v${this.version}`, wrapped };
  }

  async unwrap(w: WrappedKey, ctx: WrapContext, signal?: AbortSignal): Promise<Buffer> {
    this.calls.unwrap++;
    await this.act(signal);
    const prefix = Buffer.from(`${ctx.tenant}|`);
    if (!Buffer.from(w.wrapped).subarray(0, prefix.length).equals(prefix)) throw new KekError('corrupt', 'wrong tenant');
    const k = Buffer.from(Buffer.from(w.wrapped).subarray(prefix.length).map((b) => b ^ 0x5a));
    if (this.lie) k[0] = (k[0] as number) ^ 1;
    return k;
  }

  async rotate() {
    this.version++;
    return this.describe();
  }

  async describe() {
    this.calls.describe++;
    if (this.fail) throw this.fail;
    return { id: this.id, type: this.type, currentVersionRef: `${this.id}:v${this.version}`, details: {} };
  }

  async probe(signal?: AbortSignal) {
    await this.act(signal);
  }

  async close() {}
}

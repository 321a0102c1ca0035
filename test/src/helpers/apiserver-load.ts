/**
 * apiserver-like load on a shim: workers Encrypt fresh 32-byte seeds and Decrypt earlier ones, each call
 * with the apiserver's 3 s deadline, and check EVERY answer against the seed it must return. A wrong
 * plaintext is a failure like an error is.
 */
import { randomBytes } from 'node:crypto';
import type { KmsClient } from './kms-client';
import { recordSeed } from './seeds';

export interface Sealed {
  seed: Buffer;
  ciphertext: Buffer;
  key_id: string;
  annotations: Record<string, Buffer>;
  /** ms since the load started, for tests that care when it was written */
  at: number;
}

export class ApiserverLoad {
  readonly sealed: Sealed[] = [];
  readonly failures: string[] = [];
  encrypts = 0;
  decrypts = 0;
  private running = false;
  private workers: Promise<void>[] = [];
  private readonly t0 = Date.now();

  constructor(private readonly kms: KmsClient, private readonly opts: { workers?: number; pauseMs?: number; encrypt?: boolean } = {}) {}

  start(): this {
    this.running = true;
    this.workers = Array.from({ length: this.opts.workers ?? 3 }, () => this.work());
    return this;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }

  private async work(): Promise<void> {
    while (this.running) {
      if (this.opts.encrypt !== false) await this.encryptOne();
      const s = this.sealed[Math.floor(Math.random() * this.sealed.length)];
      if (s) await this.decryptOne(s);
      await new Promise((r) => setTimeout(r, this.opts.pauseMs ?? 30));
    }
  }

  async encryptOne(): Promise<Sealed | undefined> {
    const seed = recordSeed(randomBytes(32));
    try {
      const r = await this.kms.encrypt(seed);
      this.encrypts++;
      const s = { seed, ciphertext: r.ciphertext, key_id: r.key_id, annotations: r.annotations, at: Date.now() - this.t0 };
      this.sealed.push(s);
      return s;
    } catch (e) {
      this.failures.push(`Encrypt: ${(e as Error).message}`);
      return undefined;
    }
  }

  async decryptOne(s: Sealed): Promise<void> {
    try {
      const r = await this.kms.decrypt({ ciphertext: s.ciphertext, key_id: s.key_id, annotations: s.annotations });
      this.decrypts++;
      if (!Buffer.from(r.plaintext).equals(s.seed)) this.failures.push('Decrypt: wrong plaintext');
    } catch (e) {
      this.failures.push(`Decrypt: ${(e as Error).message}`);
    }
  }
}

/** Sum of a Prometheus counter/gauge over the series whose labels include every given label. */
export async function metric(httpPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

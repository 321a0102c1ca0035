/**
 * The restart-storm rig: 3 broker replicas on the AWS KMS emulator (its own process, Decrypt calls counted at
 * its control endpoint) sharing one Redis (standalone or cluster), 20 seeds wrapped up front, and a storm of
 * apiserver-like clients (separate channels spread over the replicas) that each unwrap every seed at once,
 * every answer compared with its seed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { freePort, tempDir } from '@kekbroker/testkit';
import type { UnwrapResponse, WrapResponse } from '@kekbroker/proto';
import { brokerClient, tenantMd, unary } from './broker-client';
import { TestFleet, type FleetOptions } from './fleet';
import { REPO, startProcess, waitFor, type Proc } from './processes';
import { recordSeed } from './seeds';

export class StormRig {
  readonly envelopes: Array<{ seed: Buffer; ciphertext: Buffer; keyId: string }> = [];
  private constructor(readonly fleet: TestFleet, private readonly emulators: Proc, private readonly control: number) {}

  static async start(redis: Pick<FleetOptions, 'redis' | 'redisMode'>, seeds = 20): Promise<StormRig> {
    const dir = await tempDir();
    const [aws, gcp, azure, control] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const emulators = startProcess(path.join(REPO, 'packages/emulators/dist/cli.js'),
      ['--aws-port', String(aws), '--gcp-port', String(gcp), '--azure-port', String(azure), '--control-port', String(control), '--dir', dir], path.join(dir, 'emulators.log'));
    await waitFor('emulators', async () => (await fetch(`http://127.0.0.1:${control}/calls/aws`).catch(() => undefined))?.ok ?? false, 30_000, 100);
    Object.assign(process.env, { E2E_AWS_KEY: 'AKIDEXAMPLE', E2E_AWS_SECRET: 'not-a-secret', AWS_EC2_METADATA_DISABLED: 'true' });
    // The count is about coalescing, not latency: on a loaded shared box an SDK retry (one more call at the
    // emulator) or a deadline-abandoned call would blur it, so this fleet gets generous timeouts and one attempt.
    const providerYaml = `{ type: aws-kms, region: us-east-1, keyId: alias/kekbroker-dev, endpoint: "http://127.0.0.1:${aws}", maxAttempts: 1, requestTimeoutMs: 10000, connectionTimeoutMs: 5000, callTimeoutMs: 12000, credentials: { source: env, accessKeyIdEnv: E2E_AWS_KEY, secretAccessKeyEnv: E2E_AWS_SECRET } }`;
    const fleet = await TestFleet.start(dir, 3, { ...redis, providerYaml, extraYaml: 'limits: { deadlineMs: 12000 }\n', redisCommandTimeoutMs: 3000, flightLockMs: 5000 });
    const rig = new StormRig(fleet, emulators, control);
    const c = brokerClient(fleet.ports[0]?.grpc as number);
    try {
      for (let i = 0; i < seeds; i++) {
        const seed = recordSeed(randomBytes(32));
        const w = await unary<object, WrapResponse>(c, 'Wrap', { keyring: 'default', plaintext: seed }, tenantMd('dev'));
        rig.envelopes.push({ seed, ciphertext: w.ciphertext as Buffer, keyId: w.key_id as string });
      }
    } finally {
      c.close();
    }
    return rig;
  }

  async stop(): Promise<void> {
    await this.fleet.stop();
    await this.emulators.kill();
  }

  /** KMS Decrypt calls the emulator has served so far. */
  async decrypts(): Promise<number> {
    return ((await (await fetch(`http://127.0.0.1:${this.control}/calls/aws`)).json()) as Record<string, number>)['Decrypt'] ?? 0;
  }

  /** SIGKILL every replica and start it again: cold L1. */
  async restartAll(): Promise<void> {
    for (const h of this.fleet.handles) await h?.proc.kill('SIGKILL');
    for (let i = 0; i < this.fleet.handles.length; i++) await this.fleet.start(i);
  }

  async sealingKeysOpen(): Promise<void> {
    await waitFor('every replica has the cache-sealing key open', async () => {
      for (let i = 0; i < this.fleet.handles.length; i++) if (!(await this.fleet.adminStatus(i)).fleet?.sealingKeys.every((s) => s.open)) return false;
      return true;
    }, 20_000, 100);
  }

  /** `clients` clients, spread over the replicas, each unwrapping every seed at once; returns the KMS Decrypts made. */
  async storm(clients: number): Promise<{ kmsCalls: number; ms: number }> {
    const before = await this.decrypts();
    const t0 = performance.now();
    const n = this.fleet.handles.length;
    const channels = Array.from({ length: clients }, (_, i) => brokerClient(this.fleet.ports[i % n]?.grpc as number));
    // Connected first: the storm is about the brokers, not the TCP handshakes of one test process.
    await Promise.all(channels.map((c) => new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())))));
    try {
      await Promise.all(channels.flatMap((c) => this.envelopes.map(async (e) => {
        // A generous deadline: 1,000 calls from one test process on a shared 2-core box (the figure is in bench/).
        const r = await unaryWithin<UnwrapResponse>(c, { keyring: 'default', ciphertext: e.ciphertext, key_id: e.keyId }, 15_000);
        assert.ok(Buffer.from(r.plaintext as Buffer).equals(e.seed), 'every answer is its seed');
      })));
    } finally {
      for (const c of channels) c.close();
    }
    return { kmsCalls: (await this.decrypts()) - before, ms: performance.now() - t0 };
  }
}

function unaryWithin<Res>(c: ReturnType<typeof brokerClient>, req: object, ms: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    (c as unknown as { Unwrap: (r: object, md: unknown, o: object, cb: (e: Error | null, r?: Res) => void) => void })
      .Unwrap(req, tenantMd('dev'), { deadline: Date.now() + ms }, (e, r) => (e ? reject(e) : resolve(r as Res)));
  });
}

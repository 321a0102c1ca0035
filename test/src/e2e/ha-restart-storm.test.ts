/**
 * Restart storm, counted at the KMS: 3 broker replicas (real processes) on the AWS KMS emulator and a real
 * redis-server. 50 apiserver-like clients of one tenant (separate channels spread over the replicas) decrypt the
 * same 20 seeds at once, every answer checked; the emulator counts its Decrypt calls.
 *  - cold L1 and cold L2: exactly 20 KMS Decrypts for the whole fleet (fleet-wide single-flight);
 *  - replicas restarted again, L2 warm in Redis: 0 KMS Decrypts;
 *  - Redis down, replicas restarted: at most 20 per replica (each replica still coalesces its own misses).
 * (Each replica also unwraps the cache-sealing key once when it starts: counted before each storm begins.)
 * The emulators run in their own process (npm run emulators) so that the 1,000 calls this test process makes
 * do not starve the KMS; Decrypts are counted through its control endpoint.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startRedis, tempDir, type RedisServer } from '@kekbroker/testkit';
import type { UnwrapResponse, WrapResponse } from '@kekbroker/proto';
import { brokerClient, tenantMd, unary } from '../helpers/broker-client';
import path from 'node:path';
import { freePort } from '@kekbroker/testkit';
import { TestFleet } from '../helpers/fleet';
import { REPO, startProcess, waitFor, type Proc } from '../helpers/processes';
import { recordSeed } from '../helpers/seeds';

const CLIENTS = 50;
const SEEDS = 20;

describe('restart storm: one KMS call per distinct seed across the fleet', { timeout: 300_000 }, () => {
  let redis: RedisServer;
  let fleet: TestFleet;
  let emulators: Proc;
  let control: number;
  const envelopes: Array<{ seed: Buffer; ciphertext: Buffer; keyId: string }> = [];

  before(async () => {
    const dir = await tempDir();
    const [aws, gcp, azure] = [await freePort(), await freePort(), await freePort()];
    control = await freePort();
    emulators = startProcess(path.join(REPO, 'packages/emulators/dist/cli.js'),
      ['--aws-port', String(aws), '--gcp-port', String(gcp), '--azure-port', String(azure), '--control-port', String(control), '--dir', dir], path.join(dir, 'emulators.log'));
    await waitFor('emulators', async () => (await fetch(`http://127.0.0.1:${control}/calls/aws`).catch(() => undefined))?.ok ?? false, 30_000, 100);
    Object.assign(process.env, { E2E_AWS_KEY: 'AKIDEXAMPLE', E2E_AWS_SECRET: 'not-a-secret', AWS_EC2_METADATA_DISABLED: 'true' });
    redis = await startRedis();
    // The count is about coalescing, not latency: on a loaded shared box an SDK retry (one more call at the
    // emulator) or a deadline-abandoned call would blur it, so this fleet gets generous timeouts and one attempt.
    const providerYaml = `{ type: aws-kms, region: us-east-1, keyId: alias/kekbroker-dev, endpoint: "http://127.0.0.1:${aws}", maxAttempts: 1, requestTimeoutMs: 10000, connectionTimeoutMs: 5000, callTimeoutMs: 12000, credentials: { source: env, accessKeyIdEnv: E2E_AWS_KEY, secretAccessKeyEnv: E2E_AWS_SECRET } }`;
    fleet = await TestFleet.start(dir, 3, { redis: [redis.address], providerYaml, extraYaml: 'limits: { deadlineMs: 12000 }\n', redisCommandTimeoutMs: 3000, flightLockMs: 5000 });
    const c = brokerClient(fleet.ports[0]?.grpc as number);
    for (let i = 0; i < SEEDS; i++) {
      const seed = recordSeed(randomBytes(32));
      const w = await unary<object, WrapResponse>(c, 'Wrap', { keyring: 'default', plaintext: seed }, tenantMd('dev'));
      envelopes.push({ seed, ciphertext: w.ciphertext as Buffer, keyId: w.key_id as string });
    }
    c.close();
  });

  after(async () => {
    await fleet?.stop();
    await redis?.stop();
    await emulators?.kill();
  });

  const decrypts = async (): Promise<number> => ((await (await fetch(`http://127.0.0.1:${control}/calls/aws`)).json()) as Record<string, number>)['Decrypt'] ?? 0;

  function unaryWithin<Res>(c: ReturnType<typeof brokerClient>, req: object, ms: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      (c as unknown as { Unwrap: (r: object, md: unknown, o: object, cb: (e: Error | null, r?: Res) => void) => void })
        .Unwrap(req, tenantMd('dev'), { deadline: Date.now() + ms }, (e, r) => (e ? reject(e) : resolve(r as Res)));
    });
  }

  async function restartAll(): Promise<void> {
    for (const h of fleet.handles) await h?.proc.kill('SIGKILL');
    for (let i = 0; i < 3; i++) await fleet.start(i);
  }

  async function sealingKeysOpen(): Promise<void> {
    await waitFor('every replica has the cache-sealing key open', async () => {
      for (let i = 0; i < 3; i++) if (!(await fleet.adminStatus(i)).fleet?.sealingKeys.every((s) => s.open)) return false;
      return true;
    }, 20_000, 100);
  }

  /** 50 clients, spread over the replicas, each decrypting every seed at once; returns the KMS Decrypts made. */
  async function storm(): Promise<{ kmsCalls: number; ms: number }> {
    const before = await decrypts();
    const t0 = performance.now();
    const clients = Array.from({ length: CLIENTS }, (_, i) => brokerClient(fleet.ports[i % 3]?.grpc as number));
    // Connected first: the storm is about the brokers, not 50 TCP handshakes in this one test process.
    await Promise.all(clients.map((c) => new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())))));
    try {
      await Promise.all(clients.flatMap((c) => envelopes.map(async (e) => {
        // A generous deadline: 1,000 calls from one test process on a shared 2-core box (the figure is in bench/).
        const r = await unaryWithin<UnwrapResponse>(c, { keyring: 'default', ciphertext: e.ciphertext, key_id: e.keyId }, 15_000);
        assert.ok(Buffer.from(r.plaintext as Buffer).equals(e.seed), 'every answer is its seed');
      })));
    } finally {
      for (const c of clients) c.close();
    }
    return { kmsCalls: (await decrypts()) - before, ms: performance.now() - t0 };
  }

  it('cold L1 and cold L2 on 3 restarted replicas: exactly 20 KMS Decrypts for 50 clients x 20 seeds', async () => {
    await restartAll();
    // The Wraps above filled L2; drop those entries (keep the sealing keys) so L2 is cold too.
    for (const k of redis.cli('--scan', '--pattern', 'kekbroker:{*}:l2').split('\n').filter(Boolean)) redis.cli('del', k);
    await sealingKeysOpen();
    const r = await storm();
    console.log(`restart storm, cold L2: ${r.kmsCalls} KMS Decrypts, ${Math.round(r.ms)} ms for ${CLIENTS}x${SEEDS} unwraps`);
    const statuses = await Promise.all([0, 1, 2].map(async (i) => JSON.stringify((await fleet.adminStatus(i)).fleet)));
    assert.equal(r.kmsCalls, SEEDS, statuses.join('\n'));
  });

  it('restarted again with L2 warm in Redis: 0 KMS Decrypts', async () => {
    await restartAll();
    await sealingKeysOpen();
    const r = await storm();
    console.log(`restart storm, warm L2: ${r.kmsCalls} KMS Decrypts, ${Math.round(r.ms)} ms`);
    assert.equal(r.kmsCalls, 0);
  });

  it('Redis down: at most 20 KMS Decrypts per replica, every answer still right', async () => {
    await redis.stop();
    await restartAll();
    const r = await storm();
    console.log(`restart storm, Redis down: ${r.kmsCalls} KMS Decrypts, ${Math.round(r.ms)} ms`);
    assert.ok(r.kmsCalls >= SEEDS && r.kmsCalls <= 3 * SEEDS, `${r.kmsCalls} KMS calls`);
  });
});

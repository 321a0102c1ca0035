/**
 * A broker fleet for HA tests: N replicas (real processes) sharing one keyring config and one Redis, a shim
 * over all of them, and an apiserver-like load that checks every answer.
 */
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { startRedis, tempDir, type RedisServer } from '@kekbroker/testkit';
import { KmsClient } from './kms-client';
import { allocateBrokerPorts, startBroker, startShim, waitFor, type BrokerHandle, type BrokerPorts, type Proc } from './processes';
import { recordSeed } from './seeds';

export interface FleetOptions {
  redis: string[];
  redisMode?: 'standalone' | 'sentinel' | 'cluster';
  sentinelName?: string;
  /** Provider section for the keyring's single provider (default: the local software key, shared file). */
  providerYaml?: string;
  extraYaml?: string;
  /** More fields of the keyring `default` (e.g. `rotationPeriodSeconds: 2`). */
  keyringYaml?: string;
  /** Several providers instead of the one `kms`: id -> provider section; the keyring uses them in this order. */
  providers?: Record<string, string>;
  redisCommandTimeoutMs?: number;
  flightLockMs?: number;
}

export class TestFleet {
  readonly handles: Array<BrokerHandle | undefined>;
  private constructor(readonly dir: string, readonly ports: BrokerPorts[], readonly configs: string[]) {
    this.handles = ports.map(() => undefined);
  }

  static async start(dir: string, n: number, o: FleetOptions): Promise<TestFleet> {
    const ports: BrokerPorts[] = [];
    for (let i = 0; i < n; i++) ports.push(await allocateBrokerPorts());
    const configs = ports.map((p, i) => fleetConfig(p, `b${i + 1}`, o));
    const f = new TestFleet(dir, ports, configs);
    // One at a time: the first creates the local keystore the others then read.
    for (let i = 0; i < n; i++) await f.start(i);
    return f;
  }

  async start(i: number): Promise<BrokerHandle> {
    const h = await startBroker(this.dir, this.configs[i] as string, this.ports[i] as BrokerPorts, 'admin-token-fleet', `b${i + 1}`);
    this.handles[i] = h;
    return h;
  }

  get grpcEndpoints(): string[] {
    return this.ports.map((p) => `127.0.0.1:${p.grpc}`);
  }

  async readyz(i: number): Promise<{ leader: boolean; leaderEpoch: number } | undefined> {
    const h = this.handles[i];
    if (!h?.proc.alive) return undefined;
    const r = await fetch(`http://127.0.0.1:${h.ports.http}/readyz`, { signal: AbortSignal.timeout(500) }).catch(() => undefined);
    return r ? ((await r.json()) as { leader: boolean; leaderEpoch: number }) : undefined;
  }

  async leaderIndex(except = -1): Promise<number> {
    for (let i = 0; i < this.handles.length; i++) {
      if (i === except) continue;
      if ((await this.readyz(i))?.leader) return i;
    }
    return -1;
  }

  async adminStatus(i: number): Promise<{ fleet?: { sealingKeys: Array<{ open: boolean }> } }> {
    const h = this.handles[i] as BrokerHandle;
    const r = await fetch(`http://127.0.0.1:${h.ports.admin}/v1/admin/status`, { headers: { authorization: `Bearer ${h.adminToken}` } });
    return (await r.json()) as { fleet?: { sealingKeys: Array<{ open: boolean }> } };
  }

  async stop(): Promise<void> {
    await Promise.all(this.handles.flatMap((h) => (h ? [h.proc.kill('SIGKILL')] : [])));
  }
}

/** A fleet, one shim over all its replicas (apiserver's 2.5 s budget), and a KMS v2 client of the shim. */
export interface FleetWithShim {
  fleet: TestFleet;
  shim: { proc: Proc; socket: string };
  kms: KmsClient;
  /** Closes the client, stops the shim and SIGKILLs the replicas (Redis is the caller's). */
  stop(): Promise<void>;
}

/** Start `n` replicas and the shim; resolves once the shim's Status is OK and a replica holds the lease. */
export async function startFleetWithShim(o: FleetOptions, n = 3): Promise<FleetWithShim> {
  const dir = await tempDir();
  const fleet = await TestFleet.start(dir, n, o);
  const shim = await startShim(dir, [...fleet.grpcEndpoints.flatMap((e) => ['--broker', e]), '--insecure-dev-tenant', 'dev', '--grace-ms', '20000', '--budget-ms', '2500']);
  const kms = new KmsClient(shim.socket);
  await waitFor('shim status OK', async () => (await kms.status()).healthz === 'ok');
  await waitFor('a leader', async () => (await fleet.leaderIndex()) >= 0);
  return {
    fleet, shim, kms,
    async stop() {
      kms.close();
      await shim.proc.kill();
      await fleet.stop();
    },
  };
}

/** What fleetOnRedis() sets up; the fields are set once the suite's `before` hook has run. */
export interface FleetOnRedis {
  redis: RedisServer;
  fleet: TestFleet;
  kms: KmsClient;
}

/**
 * For a describe(): registers the hooks that start a redis-server and 3 replicas with a shim over them before
 * the suite, and kill them all after it.
 */
export function fleetOnRedis(): FleetOnRedis {
  const rig = {} as FleetOnRedis;
  let ha: FleetWithShim | undefined;
  before(async () => {
    rig.redis = await startRedis();
    ha = await startFleetWithShim({ redis: [rig.redis.address] });
    rig.fleet = ha.fleet;
    rig.kms = ha.kms;
  });
  after(async () => {
    await ha?.stop();
    await rig.redis?.stop();
  });
  return rig;
}

export function fleetConfig(ports: BrokerPorts, replicaId: string, o: FleetOptions): string {
  return `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
providers:
${Object.entries(o.providers ?? { kms: o.providerYaml ?? '{ type: local, keystore: ./keystore.json }' }).map(([id, y]) => `  ${id}: ${y}`).join('\n')}
keyrings:
  default: { providers: [${Object.keys(o.providers ?? { kms: '' }).join(', ')}]${o.keyringYaml ? `, ${o.keyringYaml}` : ''} }
tenants:
  dev: { keyrings: [default] }
  tenant-b: { keyrings: [default] }
cache: { maxStaleSeconds: 300 }
redis: { mode: ${o.redisMode ?? 'standalone'}, nodes: [${o.redis.map((r) => `"${r}"`).join(', ')}]${o.sentinelName ? `, sentinelName: ${o.sentinelName}` : ''}, commandTimeoutMs: ${o.redisCommandTimeoutMs ?? 1000} }
ha: { replicaId: ${replicaId}, leaseTtlMs: 3000, renewEveryMs: 1000, flightLockMs: ${o.flightLockMs ?? 2500} }
log: { level: info, audit: false }
${o.extraYaml ?? ''}`;
}

export interface LoadResult { ok: number; failed: number; wrong: number; errors: string[]; maxMs: number }

/**
 * Apiserver-like load through the shim: `workers` loops of Encrypt (new 32-byte seed) + Decrypt, and Decrypts of
 * earlier ciphertexts, each call with the apiserver's 3 s deadline; every plaintext compared with its seed.
 */
export class Load {
  private running = true;
  private readonly pairs: Array<{ seed: Buffer; ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> }> = [];
  readonly result: LoadResult = { ok: 0, failed: 0, wrong: 0, errors: [], maxMs: 0 };
  private readonly loops: Array<Promise<void>>;

  constructor(private readonly client: KmsClient, workers = 4, private readonly pauseMs = 25) {
    this.loops = Array.from({ length: workers }, () => this.loop());
  }

  private async timed<T>(p: Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await p;
    } finally {
      this.result.maxMs = Math.max(this.result.maxMs, performance.now() - t0);
    }
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        if (this.pairs.length < 20 || Math.random() < 0.3) {
          const seed = recordSeed(randomBytes(32));
          const enc = await this.timed(this.client.encrypt(seed));
          const dec = await this.timed(this.client.decrypt({ ciphertext: enc.ciphertext, key_id: enc.key_id, annotations: enc.annotations }));
          this.check(dec.plaintext, seed);
          this.pairs.push({ seed, ciphertext: enc.ciphertext, key_id: enc.key_id, annotations: enc.annotations });
          this.result.ok += 2;
        } else {
          const p = this.pairs[Math.floor(Math.random() * this.pairs.length)] as (typeof this.pairs)[0];
          const dec = await this.timed(this.client.decrypt({ ciphertext: p.ciphertext, key_id: p.key_id, annotations: p.annotations }));
          this.check(dec.plaintext, p.seed);
          this.result.ok++;
        }
      } catch (e) {
        this.result.failed++;
        if (this.result.errors.length < 20) this.result.errors.push(`${new Date().toISOString()} ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, this.pauseMs));
    }
  }

  private check(got: Buffer, want: Buffer): void {
    if (!got.equals(want)) {
      this.result.wrong++;
      throw new Error('WRONG ANSWER: decrypt returned bytes that are not the seed');
    }
  }

  async stop(): Promise<LoadResult> {
    this.running = false;
    await Promise.all(this.loops);
    return this.result;
  }
}

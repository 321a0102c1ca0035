/**
 * Every answer under concurrent load, through real shim and broker processes, compared with the seed it must
 * be. Written after overlapping Decrypts came back OK with 32 zero bytes: the broker zeroed each plaintext right
 * after `call.write`, before grpc-js had serialised the queued write. These tests fail if that returns.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@kekbroker/testkit';
import { KmsClient } from '../helpers/kms-client';
import { describeLoad, runLoad } from '../helpers/load';
import { allocateBrokerPorts, devBrokerConfig, startBroker, startShim, waitFor, type BrokerHandle, type Proc } from '../helpers/processes';
import { recordSeed } from '../helpers/seeds';
import { AWS } from './cloud-targets';

type Sealed = { ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> };
const CONCURRENCIES = [1, 4, 16, 64, 256];
const SEEDS = 50;
const DECRYPTS = 1000;

async function sealSeeds(kms: KmsClient, n: number): Promise<Array<{ seed: Buffer; sealed: Sealed }>> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const seed = recordSeed(randomBytes(32));
    out.push({ seed, sealed: await kms.encrypt(Buffer.from(seed), `seal-${i}`) });
  }
  return out;
}

/** 1,000 Decrypts at each concurrency over the sealed seeds; every plaintext must equal its seed. */
async function decryptAtEveryConcurrency(kms: KmsClient, sealed: Array<{ seed: Buffer; sealed: Sealed }>): Promise<void> {
  for (const c of CONCURRENCIES) {
    const r = await runLoad(DECRYPTS, c, async (i) => {
      const s = sealed[i % sealed.length] as { seed: Buffer; sealed: Sealed };
      const { plaintext } = await kms.decrypt({ ...s.sealed, uid: `d-${c}-${i}` });
      if (!plaintext.equals(s.seed)) return `seed ${i % sealed.length} at c=${c}: got ${plaintext.every((b) => b === 0) ? 'all zeros' : 'other bytes'}`;
      return undefined;
    });
    assert.equal(r.errors.length + r.wrong.length, 0, `c=${c}: ${describeLoad(r)}`);
  }
}

describe('concurrent KMS v2 calls: every answer is the right one', { timeout: 300_000 }, () => {
  describe('one shim, local keyring, warm cache', () => {
    let broker: BrokerHandle;
    let shim: { proc: Proc; socket: string };
    let kms: KmsClient;
    before(async () => {
      const dir = await tempDir();
      const ports = await allocateBrokerPorts();
      broker = await startBroker(dir, devBrokerConfig(ports, 'log: { level: warn, audit: false }\n'), ports, 'admin-secret-conc');
      shim = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev']);
      kms = new KmsClient(shim.socket);
      await waitFor('status ok', () => kms.status().catch(() => undefined));
    });
    after(async () => {
      kms?.close();
      await shim?.proc.kill();
      await broker?.proc.kill();
    });

    it('1,000 Decrypts over 50 seeds at concurrency 1, 4, 16, 64 and 256', async () => {
      await decryptAtEveryConcurrency(kms, await sealSeeds(kms, SEEDS));
    });

    it('Encrypt and Decrypt interleaved at concurrency 64; every Encrypt decrypts afterwards to its seed', async () => {
      const known = await sealSeeds(kms, 16);
      const written: Array<{ seed: Buffer; sealed: Sealed }> = [];
      const r = await runLoad(1000, 64, async (i) => {
        if (i % 2 === 0) {
          const seed = recordSeed(randomBytes(32));
          written.push({ seed, sealed: await kms.encrypt(Buffer.from(seed), `mix-e-${i}`) });
          return undefined;
        }
        const s = known[i % known.length] as { seed: Buffer; sealed: Sealed };
        const { plaintext } = await kms.decrypt({ ...s.sealed, uid: `mix-d-${i}` });
        return plaintext.equals(s.seed) ? undefined : `decrypt ${i} wrong`;
      });
      assert.equal(r.errors.length + r.wrong.length, 0, describeLoad(r));
      assert.equal(written.length, 500);
      const check = await runLoad(written.length, 64, async (i) => {
        const w = written[i] as { seed: Buffer; sealed: Sealed };
        const { plaintext } = await kms.decrypt({ ...w.sealed, uid: `mix-check-${i}` });
        return plaintext.equals(w.seed) ? undefined : `encrypt ${i} decrypts to the wrong bytes`;
      });
      assert.equal(check.errors.length + check.wrong.length, 0, describeLoad(check));
    });
  });

  describe('two shims of two tenants on one broker at once', () => {
    let broker: BrokerHandle;
    const shims: Array<{ proc: Proc; socket: string }> = [];
    const clients: KmsClient[] = [];
    before(async () => {
      const dir = await tempDir();
      const ports = await allocateBrokerPorts();
      broker = await startBroker(dir, devBrokerConfig(ports, 'log: { level: warn, audit: false }\n'), ports, 'admin-secret-two');
      for (const tenant of ['dev', 'tenant-b']) {
        const s = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', tenant], `shim-${tenant}`);
        shims.push(s);
        const k = new KmsClient(s.socket);
        clients.push(k);
        await waitFor(`status ok (${tenant})`, () => k.status().catch(() => undefined));
      }
    });
    after(async () => {
      for (const k of clients) k.close();
      for (const s of shims) await s.proc.kill();
      await broker?.proc.kill();
    });

    it('no answer crosses sessions or tenants', async () => {
      const [a, b] = clients as [KmsClient, KmsClient];
      const [sa, sb] = await Promise.all([sealSeeds(a, 25), sealSeeds(b, 25)]);
      const load = (k: KmsClient, sealed: typeof sa, tag: string) =>
        runLoad(1000, 64, async (i) => {
          const s = sealed[i % sealed.length] as (typeof sa)[0];
          const { plaintext } = await k.decrypt({ ...s.sealed, uid: `${tag}-${i}` });
          return plaintext.equals(s.seed) ? undefined : `${tag} ${i} got another answer`;
        });
      const [ra, rb] = await Promise.all([load(a, sa, 'a'), load(b, sb, 'b')]);
      assert.equal(ra.errors.length + ra.wrong.length, 0, `tenant dev: ${describeLoad(ra)}`);
      assert.equal(rb.errors.length + rb.wrong.length, 0, `tenant-b: ${describeLoad(rb)}`);
      // A ciphertext of one tenant never opens for the other (AAD-bound), under the same load.
      const cross = await runLoad(50, 16, async (i) => {
        const s = sa[i % sa.length] as (typeof sa)[0];
        try {
          await b.decrypt({ ...s.sealed, uid: `cross-${i}` });
          return `tenant-b opened tenant dev's ciphertext ${i}`;
        } catch {
          return undefined;
        }
      });
      assert.equal(cross.wrong.length, 0, describeLoad(cross));
    });
  });

  describe('cold path: aws-kms keyring, broker cache off, 5 ms injected KMS latency', () => {
    let cloud: Awaited<ReturnType<typeof AWS.start>>;
    let broker: BrokerHandle;
    let shim: { proc: Proc; socket: string };
    let kms: KmsClient;
    before(async () => {
      cloud = await AWS.start();
      Object.assign(process.env, cloud.env);
      const dir = await tempDir();
      const ports = await allocateBrokerPorts();
      const config = `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
providers:
  cloud: ${cloud.providerYaml}
keyrings:
  default: { providers: [cloud] }
tenants:
  dev: { keyrings: [default] }
cache: { maxEntries: 0, ttlSeconds: 60 }
log: { level: warn, audit: false }
`;
      broker = await startBroker(dir, config, ports, 'admin-secret-cold');
      shim = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev']);
      kms = new KmsClient(shim.socket);
      await waitFor('status ok', () => kms.status().catch(() => undefined));
    });
    after(async () => {
      kms?.close();
      await shim?.proc.kill();
      await broker?.proc.kill();
      await cloud?.stop();
    });

    it('1,000 Decrypts over 50 seeds at every concurrency reach the KMS (single-flight waiters) and all match', async () => {
      const sealed = await sealSeeds(kms, SEEDS);
      cloud.faults.add({ kind: 'latency', ms: 5 });
      cloud.onFaultsChanged();
      const before = cloud.faults.callCount('Decrypt');
      await decryptAtEveryConcurrency(kms, sealed);
      // The cache is off: the answers really came from the KMS (coalesced when the same seed overlapped).
      assert.ok(cloud.faults.callCount('Decrypt') - before >= DECRYPTS, 'every Decrypt round went to the KMS');
    });
  });
});

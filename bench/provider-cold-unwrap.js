// Cold unwrap per provider: every call reaches the KMS emulator (broker cache off). Compares
//   direct: the provider package's unwrap called in this process (SDK + emulator = "the KMS time")
//   broker: kekbroker.v1 Unwrap through the broker process (gRPC + envelope + the same provider call)
// at 0 ms and 20 ms injected KMS latency. broker − direct = the broker's own overhead.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const grpc = require('@grpc/grpc-js');
const emulators = require('@kekbroker/emulators');
const { brokerV1 } = require('@kekbroker/proto');
const { measure } = require('./lib/measure');
const { ROOT, freePort, waitFor } = require('./lib/procs');

const CTX = { tenant: 'dev', keyring: 'default', envelopeVersion: 1 };

const TARGETS = [
  {
    name: 'aws-kms',
    async start() {
      const emu = await emulators.startAwsKmsEmulator();
      const key = emu.createKey();
      process.env.BENCH_AWS_KEY = 'AKIDEXAMPLE';
      process.env.BENCH_AWS_SECRET = 'not-a-secret';
      const cfg = { type: 'aws-kms', region: emu.region, keyId: key.arn, endpoint: emu.endpoint, credentials: { source: 'env', accessKeyIdEnv: 'BENCH_AWS_KEY', secretAccessKeyEnv: 'BENCH_AWS_SECRET' } };
      return { emu, cfg, provider: () => require('@kekbroker/provider-aws-kms').fromConfig('cloud', cfg) };
    },
  },
  {
    name: 'gcp-kms',
    async start() {
      const emu = await emulators.startGcpKmsEmulator();
      const keyName = await emu.createKey('bench', 'europe-west1', 'ring', 'kek');
      const cfg = { type: 'gcp-kms', keyName, endpoint: emu.endpoint, insecureLoopback: true };
      return { emu, cfg, provider: () => require('@kekbroker/provider-gcp-kms').fromConfig('cloud', cfg) };
    },
  },
  {
    name: 'azure-keyvault',
    async start() {
      const emu = await emulators.startAzureKeyVaultEmulator();
      await emu.createKey('kek', 'RSA', 3072);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-az-'));
      const caFile = path.join(dir, 'ca.pem');
      fs.writeFileSync(caFile, emu.caPem);
      const cfg = { type: 'azure-keyvault', vaultUrl: emu.vaultUrl, keyName: 'kek', tlsCaFile: caFile, disableChallengeResourceVerification: true, credential: { type: 'emulator' } };
      return { emu, cfg, provider: () => require('@kekbroker/provider-azure-keyvault').fromConfig('cloud', cfg) };
    },
  },
];

async function startBroker(providerCfg) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-cold-'));
  const grpcPort = await freePort();
  const http = await freePort();
  const admin = await freePort();
  fs.writeFileSync(path.join(dir, 'broker.yaml'), `grpc: { listen: "127.0.0.1:${grpcPort}", insecureLoopback: true }
http: { listen: "127.0.0.1:${http}" }
admin: { listen: "127.0.0.1:${admin}" }
providers:
  cloud: ${JSON.stringify(providerCfg)}
keyrings:
  default: { providers: [cloud] }
tenants:
  dev: { keyrings: [default] }
cache: { maxEntries: 0 }
log: { level: warn, audit: false }
`);
  const log = fs.openSync(path.join(dir, 'broker.log'), 'a');
  const child = spawn(process.execPath, [path.join(ROOT, 'services/broker/dist/main.js'), '--config', 'broker.yaml'], { cwd: dir, stdio: ['ignore', log, log], env: process.env });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${http}/readyz`)).status === 200);
  const C = brokerV1().KekBroker;
  const client = new C(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('x-kekbroker-tenant', 'dev');
  const call = (m, req) => new Promise((res, rej) => client[m](req, md, { deadline: Date.now() + 5000 }, (e, r) => (e ? rej(e) : res(r))));
  return {
    call,
    stop: () => new Promise((r) => { client.close(); child.once('exit', r); child.kill('SIGTERM'); }),
  };
}

async function run({ seconds = 4, rounds = 1 } = {}) {
  const rows = [];
  for (const t of TARGETS) {
    let env;
    try {
      env = await t.start();
    } catch (e) {
      rows.push({ name: t.name, skipped: e.message });
      continue;
    }
    const provider = await env.provider();
    const broker = await startBroker(env.cfg);
    try {
      // Every answer is compared with the key it must be.
      const key = crypto.randomBytes(32);
      const w = await provider.wrap(Buffer.from(key), CTX, AbortSignal.timeout(5000));
      const seed = crypto.randomBytes(32);
      const sealed = await broker.call('Wrap', { keyring: 'default', plaintext: Buffer.from(seed) });
      const directUnwrap = async () => ((await provider.unwrap(w, CTX, AbortSignal.timeout(5000))).equals(key) ? undefined : `${t.name} direct unwrap returned the wrong key`);
      const brokerUnwrap = async () => ((await broker.call('Unwrap', { keyring: 'default', ciphertext: sealed.ciphertext })).plaintext.equals(seed) ? undefined : `${t.name} broker Unwrap returned the wrong seed`);
      for (const latencyMs of [0, 20]) {
        env.emu.faults.clear();
        if (latencyMs) env.emu.faults.add({ kind: 'latency', ms: latencyMs });
        const direct = [];
        const viaBroker = [];
        for (let r = 0; r < rounds; r++) {
          direct.push(await measure(directUnwrap, { seconds, concurrency: 1, warmupSeconds: 0.5 }));
          viaBroker.push(await measure(brokerUnwrap, { seconds, concurrency: 1, warmupSeconds: 0.5 }));
        }
        const med = (xs, f) => [...xs.map((x) => x[f])].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
        rows.push({ name: t.name, latencyMs, direct: { p50: med(direct, 'p50'), p99: med(direct, 'p99') }, broker: { p50: med(viaBroker, 'p50'), p99: med(viaBroker, 'p99') }, errors: viaBroker.reduce((a, x) => a + x.errors, 0) + direct.reduce((a, x) => a + x.errors, 0) });
        console.log(`  ${t.name} +${latencyMs} ms: direct p50 ${med(direct, 'p50').toFixed(2)} ms, via broker p50 ${med(viaBroker, 'p50').toFixed(2)} ms`);
      }
    } finally {
      env.emu.faults.clear();
      await broker.stop();
      await provider.close();
      await env.emu.close();
    }
  }
  return rows;
}

function report(rows) {
  const out = ['', 'Cold unwrap (cache off), c=1, p50 / p99 in ms', '| provider | injected KMS latency | direct SDK call | via broker | broker overhead (p50) | overhead / KMS time | errors |', '|---|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    if (r.skipped) {
      out.push(`| ${r.name} | — | not measured: ${r.skipped} | | | | |`);
      continue;
    }
    const over = r.broker.p50 - r.direct.p50;
    out.push(`| ${r.name} | ${r.latencyMs} ms | ${r.direct.p50.toFixed(2)} / ${r.direct.p99.toFixed(2)} | ${r.broker.p50.toFixed(2)} / ${r.broker.p99.toFixed(2)} | ${over.toFixed(2)} ms | ${((100 * over) / r.direct.p50).toFixed(1)}% | ${r.errors} |`);
  }
  return out.join('\n');
}

module.exports = { run, report };

if (require.main === module) run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });

// Failover and cold-path figures through the real shim (KMS v2 on a unix socket, the Session stream to the
// broker) and broker processes, against the cloud emulators:
//   failover: AWS (active) + GCP keyring under Encrypt load; AWS goes into full outage. Time from the outage to
//     the first Encrypt answered with a GCP-only envelope, and to the acting active switching (breaker open);
//     failed calls. 10 runs (3 with --quick).
//   cold path: KMS v2 Decrypt with the broker cache off and 20 ms injected AWS latency, next to the provider's
//     own unwrap called in this process (SDK + emulator = the KMS time). Overhead = shim path − direct.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const grpc = require('@grpc/grpc-js');
const emulators = require('@kekbroker/emulators');
const { decodeEnvelope } = require('@kekbroker/core');
const { kmsV2 } = require('@kekbroker/proto');
const { measure } = require('./lib/measure');
const { ROOT, freePort, waitFor } = require('./lib/procs');

process.env.BENCH_AWS_KEY = 'AKIDEXAMPLE';
process.env.BENCH_AWS_SECRET = 'not-a-secret';
process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.METADATA_SERVER_DETECTION = 'none';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function awsCfg(emu, keyArn) {
  return { type: 'aws-kms', region: emu.region, keyId: keyArn, endpoint: emu.endpoint, credentials: { source: 'env', accessKeyIdEnv: 'BENCH_AWS_KEY', secretAccessKeyEnv: 'BENCH_AWS_SECRET' } };
}

async function startStack(providers, keyring, extra = '') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-fo-'));
  const ports = { grpc: await freePort(), http: await freePort(), admin: await freePort() };
  fs.writeFileSync(path.join(dir, 'admin.token'), 'bench-token');
  fs.writeFileSync(path.join(dir, 'broker.yaml'), `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
state: { dir: ./state }
providers:
${Object.entries(providers).map(([id, c]) => `  ${id}: ${JSON.stringify(c)}`).join('\n')}
keyrings:
  default: ${JSON.stringify(keyring)}
tenants:
  dev: { keyrings: [default] }
log: { level: warn, audit: false }
${extra}`);
  const log = fs.openSync(path.join(dir, 'stack.log'), 'a');
  const broker = spawn(process.execPath, [path.join(ROOT, 'services/broker/dist/main.js'), '--config', 'broker.yaml'], { cwd: dir, stdio: ['ignore', log, log] });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.http}/readyz`)).status === 200);
  const socket = path.join(dir, 'kms.sock');
  const shim = spawn(process.execPath, [path.join(ROOT, 'services/kms-shim/dist/main.js'), '--socket', socket, '--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev', '--log-level', 'warn'], { cwd: dir, stdio: ['ignore', log, log] });
  await waitFor(async () => fs.existsSync(socket));
  const C = kmsV2().KeyManagementService;
  const client = new C(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'localhost' });
  const call = (m, req) => new Promise((res, rej) => client[m](req, { deadline: Date.now() + 3000, waitForReady: true }, (e, r) => (e ? rej(e) : res(r))));
  const status = async () => (await (await fetch(`http://127.0.0.1:${ports.admin}/v1/admin/status`, { headers: { authorization: 'Bearer bench-token' } })).json()).keyrings[0];
  const kill = (p) => new Promise((r) => (p.exitCode !== null ? r() : (p.once('exit', r), p.kill('SIGTERM'))));
  await waitFor(async () => (await call('Status', {})).healthz === 'ok');
  return { call, status, stop: async () => { client.close(); await kill(shim); await kill(broker); } };
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };

async function failover(runs) {
  const aws = await emulators.startAwsKmsEmulator();
  const gcp = await emulators.startGcpKmsEmulator();
  const key = aws.createKey();
  const gcpKey = await gcp.createKey('bench', 'europe-west1', 'ring', 'kek');
  const stack = await startStack(
    { aws: { ...awsCfg(aws, key.arn), breaker: { halfOpenAfterSeconds: 1 } }, gcp: { type: 'gcp-kms', keyName: gcpKey, endpoint: gcp.endpoint, insecureLoopback: true } },
    { providers: ['aws', 'gcp'], holdDownSeconds: 1 },
  );
  const toPassive = [];
  const toActing = [];
  let failed = 0;
  let calls = 0;
  try {
    for (let run = 0; run < runs; run++) {
      await waitFor(async () => (await stack.status()).actingActive === 'aws', 30_000);
      let t0 = Infinity;
      let firstPassive = Infinity;
      let running = true;
      const worker = async () => {
        while (running) {
          try {
            const r = await stack.call('Encrypt', { plaintext: crypto.randomBytes(32), uid: 'bench' });
            calls++;
            const now = performance.now();
            if (now > t0 && !decodeEnvelope(r.ciphertext).wraps.some((w) => w.providerId === 'aws')) firstPassive = Math.min(firstPassive, now);
          } catch {
            failed++;
          }
        }
      };
      const workers = Array.from({ length: 4 }, worker);
      await sleep(500);
      t0 = performance.now();
      aws.faults.add({ kind: 'outage' });
      aws.onFaultsChanged();
      await waitFor(async () => (await stack.status()).actingActive === 'gcp', 30_000).catch(() => undefined);
      toActing.push(performance.now() - t0);
      await sleep(500);
      running = false;
      await Promise.all(workers);
      toPassive.push(firstPassive - t0);
      aws.faults.clear();
      aws.onFaultsChanged();
      console.log(`  run ${run + 1}: first GCP-only Encrypt after ${(firstPassive - t0).toFixed(1)} ms, acting active after ${toActing.at(-1).toFixed(0)} ms`);
    }
  } finally {
    await stack.stop();
    await aws.close();
    await gcp.close();
  }
  return { runs, toPassive, toActing, failed, calls };
}

async function coldPath({ seconds }) {
  const aws = await emulators.startAwsKmsEmulator();
  const key = aws.createKey();
  const stack = await startStack({ aws: awsCfg(aws, key.arn) }, { providers: ['aws'] }, 'cache: { maxEntries: 0 }\n');
  const provider = await require('@kekbroker/provider-aws-kms').fromConfig('aws', awsCfg(aws, key.arn));
  const ctx = { tenant: 'dev', keyring: 'default', envelopeVersion: 1 };
  try {
    // Every answer is compared with the key or seed it must be.
    const seed = crypto.randomBytes(32);
    const sealed = await stack.call('Encrypt', { plaintext: Buffer.from(seed), uid: 'bench' });
    const key = crypto.randomBytes(32);
    const w = await provider.wrap(Buffer.from(key), ctx, AbortSignal.timeout(5000));
    aws.faults.add({ kind: 'latency', ms: 20 });
    const directUnwrap = async () => ((await provider.unwrap(w, ctx, AbortSignal.timeout(5000))).equals(key) ? undefined : 'direct unwrap returned the wrong key');
    const shimDecrypt = async () => ((await stack.call('Decrypt', { ciphertext: sealed.ciphertext, key_id: sealed.key_id, annotations: sealed.annotations, uid: 'bench' })).plaintext.equals(seed) ? undefined : 'Decrypt through the shim returned the wrong seed');
    const direct = await measure(directUnwrap, { seconds, concurrency: 1, warmupSeconds: 0.5 });
    const shim = await measure(shimDecrypt, { seconds, concurrency: 1, warmupSeconds: 0.5 });
    return { direct, shim };
  } finally {
    await provider.close();
    await stack.stop();
    await aws.close();
  }
}

async function run({ seconds = 5, rounds = 3 } = {}) {
  const quick = rounds === 1;
  return { fo: await failover(quick ? 3 : 10), cold: await coldPath({ seconds }) };
}

function report({ fo, cold }) {
  const over = cold.shim.p50 - cold.direct.p50;
  return [
    '',
    `Active (AWS) in full outage under Encrypt load (c=4) through the shim; ${fo.runs} runs; ms after the outage starts`,
    '| measure | p50 | max |',
    '|---|---:|---:|',
    `| first Encrypt answered with the passive's (GCP-only) envelope | ${pct(fo.toPassive, 50).toFixed(1)} | ${Math.max(...fo.toPassive).toFixed(1)} |`,
    `| acting active switched to GCP (AWS breaker open) | ${pct(fo.toActing, 50).toFixed(0)} | ${Math.max(...fo.toActing).toFixed(0)} |`,
    `| failed Encrypts | ${fo.failed} of ${fo.calls} | |`,
    '',
    'Cold Decrypt (broker cache off), AWS emulator + 20 ms latency, c=1, ms',
    '| path | p50 | p99 | errors |',
    '|---|---:|---:|---:|',
    `| provider unwrap in-process (the KMS time) | ${cold.direct.p50.toFixed(2)} | ${cold.direct.p99.toFixed(2)} | ${cold.direct.errors} |`,
    `| KMS v2 Decrypt via shim (Session stream) + broker | ${cold.shim.p50.toFixed(2)} | ${cold.shim.p99.toFixed(2)} | ${cold.shim.errors} |`,
    `| broker + shim overhead (p50) | ${over.toFixed(2)} ms = ${((100 * over) / cold.direct.p50).toFixed(1)}% of the KMS time | | |`,
  ].join('\n');
}

module.exports = { run, report };

if (require.main === module) run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });

// Failover through the real shim (KMS v2 on a unix socket, the Session stream to the broker) and broker
// processes, against the cloud emulators: AWS (active) + GCP keyring under Encrypt load; AWS goes into full
// outage. Time from the outage to the first Encrypt answered with a GCP-only envelope, and to the acting active
// switching (breaker open); failed calls. 10 runs (3 with --quick). The cold path is in cold-decrypt-shim.js.
'use strict';
const crypto = require('node:crypto');
const emulators = require('@kekbroker/emulators');
const { decodeEnvelope } = require('@kekbroker/core');
const { waitFor } = require('./lib/procs');
const { awsCfg, startStack } = require('./lib/stack');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

async function run({ rounds = 3 } = {}) {
  return { fo: await failover(rounds === 1 ? 3 : 10) };
}

function report({ fo }) {
  return [
    '',
    `Active (AWS) in full outage under Encrypt load (c=4) through the shim; ${fo.runs} runs; ms after the outage starts`,
    '| measure | p50 | max |',
    '|---|---:|---:|',
    `| first Encrypt answered with the passive's (GCP-only) envelope | ${pct(fo.toPassive, 50).toFixed(1)} | ${Math.max(...fo.toPassive).toFixed(1)} |`,
    `| acting active switched to GCP (AWS breaker open) | ${pct(fo.toActing, 50).toFixed(0)} | ${Math.max(...fo.toActing).toFixed(0)} |`,
    `| failed Encrypts | ${fo.failed} of ${fo.calls} | |`,
  ].join('\n');
}

module.exports = { run, report };

if (require.main === module) run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });

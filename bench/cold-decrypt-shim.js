// The broker's overhead on the cold path through the shim (issue 8): KMS v2 Decrypt on the real shim (unix
// socket), forwarded on its Session stream to the real broker (cache off: every Decrypt reaches the KMS), which
// opens the envelope with the AWS emulator at 20 ms injected latency. The emulator runs in its own process, as
// a KMS is never in its caller's process. The baseline, in interleaved rounds of the same run, is the AWS
// provider's own unwrap called in this process: the real SDK against the same emulator, i.e. "the KMS time".
// Overhead = shim path − direct, at p50 (medians of the rounds). The KMS v2 client is kube-apiserver-like
// (BENCH_KMS_CLIENT: `go` by default, or `grpc-js`).
// The broker's own share is read from its metrics: mean request time − mean provider call time per round.
'use strict';
const crypto = require('node:crypto');
const { measure } = require('./lib/measure');
const { awsCfg, startStack } = require('./lib/stack');
const { cpuSeconds } = require('./lib/procs');
const { startAwsEmulatorProcess } = require('./lib/emulator-proc');
const { goMeasure } = require('./lib/go-client');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function scrape(port) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sum = (name, match) => text.split('\n').filter((l) => l.startsWith(name) && l.includes(match)).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
  return {
    reqSum: sum('kekbroker_request_duration_seconds_sum', 'op="unwrap"'),
    reqCount: sum('kekbroker_request_duration_seconds_count', 'op="unwrap"'),
    provSum: sum('kekbroker_provider_call_duration_seconds_sum', 'op="unwrap"'),
    provCount: sum('kekbroker_provider_call_duration_seconds_count', 'op="unwrap"'),
  };
}

async function run({ seconds = 5, rounds = 3, latencies = [0, 20] } = {}) {
  const client = process.env.BENCH_KMS_CLIENT || 'go';
  if (!['go', 'grpc-js'].includes(client)) throw new Error(`BENCH_KMS_CLIENT=${client}: use go or grpc-js`);
  const aws = await startAwsEmulatorProcess();
  const stack = await startStack({ aws: awsCfg(aws, aws.keyArn) }, { providers: ['aws'] }, 'cache: { maxEntries: 0 }\n');
  const provider = await require('@kekbroker/provider-aws-kms').fromConfig('aws', awsCfg(aws, aws.keyArn));
  const ctx = { tenant: 'dev', keyring: 'default', envelopeVersion: 1 };
  const results = [];
  try {
    // Every answer is compared with the key or seed it must be.
    const seed = crypto.randomBytes(32);
    const sealed = await stack.call('Encrypt', { plaintext: Buffer.from(seed), uid: 'bench' });
    const k = crypto.randomBytes(32);
    const w = await provider.wrap(Buffer.from(k), ctx, AbortSignal.timeout(5000));
    const directUnwrap = async () => ((await provider.unwrap(w, ctx, AbortSignal.timeout(5000))).equals(k) ? undefined : 'direct unwrap returned the wrong key');
    const shimDecrypt = async () => ((await stack.call('Decrypt', { ciphertext: sealed.ciphertext, key_id: sealed.key_id, annotations: sealed.annotations, uid: 'bench' })).plaintext.equals(seed) ? undefined : 'Decrypt through the shim returned the wrong seed');
    const viaShim = (opts) => (client === 'go' ? goMeasure(stack.socket, [{ ...sealed, expected: seed }], opts) : measure(shimDecrypt, opts));
    for (const latencyMs of latencies) {
    await aws.clearFaults();
    if (latencyMs > 0) await aws.fault({ kind: 'latency', ms: latencyMs });
    const acc = { direct: [], shim: [], brokerOwnMs: [], brokerProviderMs: [], shimCpuUs: [], brokerCpuUs: [] };
    for (let r = 0; r < rounds; r++) {
      const d = await measure(directUnwrap, { seconds, concurrency: 1, warmupSeconds: 0.5 });
      const m0 = await scrape(stack.ports.http);
      const c0 = { shim: cpuSeconds(stack.pids.shim), broker: cpuSeconds(stack.pids.broker) };
      const s = await viaShim({ seconds, concurrency: 1, warmupSeconds: 0.5 });
      // CPU per call includes the warm-up calls: divide by every call the broker answered in the window.
      const m1 = await scrape(stack.ports.http);
      const n = m1.reqCount - m0.reqCount;
      acc.shimCpuUs.push(((cpuSeconds(stack.pids.shim) - c0.shim) * 1e6) / n);
      acc.brokerCpuUs.push(((cpuSeconds(stack.pids.broker) - c0.broker) * 1e6) / n);
      const req = (m1.reqSum - m0.reqSum) / (m1.reqCount - m0.reqCount);
      const prov = (m1.provSum - m0.provSum) / (m1.provCount - m0.provCount);
      acc.direct.push(d);
      acc.shim.push(s);
      acc.brokerOwnMs.push((req - prov) * 1000);
      acc.brokerProviderMs.push(prov * 1000);
      console.log(`  ${latencyMs} ms, round ${r + 1}: direct p50 ${d.p50.toFixed(2)} ms (this process: ${d.clientCpuUsPerCall.toFixed(0)} µs CPU per call), via shim p50 ${s.p50.toFixed(2)} ms; broker: provider call ${(prov * 1000).toFixed(2)} ms + own ${((req - prov) * 1000).toFixed(3)} ms (means)`);
    }
    const pick = (xs, f) => median(xs.map((x) => x[f]));
    results.push({
      latencyMs,
      client,
      direct: { p50: pick(acc.direct, 'p50'), p99: pick(acc.direct, 'p99'), errors: acc.direct.reduce((a, x) => a + x.errors, 0) },
      shim: { p50: pick(acc.shim, 'p50'), p99: pick(acc.shim, 'p99'), errors: acc.shim.reduce((a, x) => a + x.errors, 0) },
      brokerOwnMs: median(acc.brokerOwnMs),
      brokerProviderMs: median(acc.brokerProviderMs),
      shimCpuUs: median(acc.shimCpuUs),
      brokerCpuUs: median(acc.brokerCpuUs),
    });
    }
  } finally {
    await provider.close();
    await stack.stop();
    await aws.close();
  }
  return results;
}

function report(results) {
  return results.map((r) => table(r)).join('\n');
}

function table(r) {
  const over = r.shim.p50 - r.direct.p50;
  return [
    '',
    `Cold Decrypt (broker cache off), AWS emulator (own process) + ${r.latencyMs} ms injected latency, c=1, KMS v2 client ${r.client}, medians of the rounds, ms`,
    '| path | p50 | p99 | errors |',
    '|---|---:|---:|---:|',
    `| AWS provider unwrap in this process (the KMS time) | ${r.direct.p50.toFixed(2)} | ${r.direct.p99.toFixed(2)} | ${r.direct.errors} |`,
    `| KMS v2 Decrypt via shim (Session stream) + broker | ${r.shim.p50.toFixed(2)} | ${r.shim.p99.toFixed(2)} | ${r.shim.errors} |`,
    `| **overhead (p50)** | **${over.toFixed(2)} = ${((100 * over) / r.direct.p50).toFixed(1)}%** of the KMS time | | |`,
    `| of which the broker's own work (mean request − mean provider call, from /metrics) | ${r.brokerOwnMs.toFixed(3)} | | |`,
    `| the broker's provider call (mean, from /metrics) | ${r.brokerProviderMs.toFixed(2)} | | |`,
    `| CPU per call: shim ${r.shimCpuUs.toFixed(0)} µs, broker ${r.brokerCpuUs.toFixed(0)} µs (AWS SDK call included) | | | |`,
  ].join('\n');
}

module.exports = { run, report };

if (require.main === module) run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });

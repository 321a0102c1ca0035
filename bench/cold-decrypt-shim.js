// The broker's overhead on the cold path through the shim (issue 8): KMS v2 Decrypt on the real shim (unix
// socket), forwarded on its Session stream to the real broker (cache off: every Decrypt reaches the KMS), which
// opens the envelope with the AWS emulator at 20 ms injected latency. The emulator runs in its own process, as
// a KMS is never in its caller's process. The KMS v2 client is kube-apiserver-like (BENCH_KMS_CLIENT: `go` by
// default, or `grpc-js`). Two baselines, in interleaved rounds of the same run:
//  - "the KMS time": the AWS provider's own unwrap called in this process (the real SDK, the same emulator);
//  - a bare single-cloud plugin (bench/echo/aws-plugin.js): the same client calling a grpc-js KMS v2 server
//    that makes one AWS KMS Decrypt with the same provider code, as a cloud's own plugin does.
// The broker's overhead is what kekbroker adds over the bare plugin: kekbroker − plugin, at p50 (medians of
// the rounds), as a share of the KMS time. kekbroker − KMS time (the apiserver → plugin hop included, which
// every plugin has) is reported too, and the broker's own work from its metrics (mean request − mean
// provider call).
'use strict';
const crypto = require('node:crypto');
const { kmsV2Client } = require('./lib/kms-client');
const { measure, median } = require('./lib/measure');
const { awsCfg, startStack } = require('./lib/stack');
const { cpuSeconds, startAwsPlugin } = require('./lib/procs');
const { startAwsEmulatorProcess } = require('./lib/emulator-proc');
const { goMeasure } = require('./lib/go-client');

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

/** A KMS v2 Decrypt loop on `socket` with the chosen client; every plaintext compared with `expected`. */
function decryptRounds(client, socket, req, expected) {
  if (client === 'go') return (opts) => goMeasure(socket, [{ ...req, expected }], opts);
  const c = kmsV2Client(socket);
  return (opts) => measure(async () => ((await c.call('Decrypt', { ...req, uid: 'bench' })).plaintext.equals(expected) ? undefined : `Decrypt on ${socket} returned the wrong bytes`), opts);
}

async function run({ seconds = 5, rounds = 3, latencies = [0, 20] } = {}) {
  const client = process.env.BENCH_KMS_CLIENT || 'go';
  if (!['go', 'grpc-js'].includes(client)) throw new Error(`BENCH_KMS_CLIENT=${client}: use go or grpc-js`);
  const aws = await startAwsEmulatorProcess();
  const cfg = awsCfg(aws, aws.keyArn);
  const stack = await startStack({ aws: cfg }, { providers: ['aws'] }, 'cache: { maxEntries: 0 }\n');
  const plugin = await startAwsPlugin(cfg);
  const provider = await require('@kekbroker/provider-aws-kms').fromConfig('aws', cfg);
  const ctx = { tenant: 'dev', keyring: 'default', envelopeVersion: 1 };
  const results = [];
  try {
    // Every answer is compared with the key or seed it must be.
    const seed = crypto.randomBytes(32);
    const sealed = await stack.call('Encrypt', { plaintext: Buffer.from(seed), uid: 'bench' });
    const k = crypto.randomBytes(32);
    const w = await provider.wrap(Buffer.from(k), ctx, AbortSignal.timeout(5000));
    const directUnwrap = async () => ((await provider.unwrap(w, ctx, AbortSignal.timeout(5000))).equals(k) ? undefined : 'direct unwrap returned the wrong key');
    const viaShim = decryptRounds(client, stack.socket, { ciphertext: sealed.ciphertext, key_id: sealed.key_id, annotations: sealed.annotations }, seed);
    const pluginCiphertext = Buffer.from(JSON.stringify({ keyVersionRef: w.keyVersionRef, wrapped: Buffer.from(w.wrapped).toString('base64') }));
    const viaPlugin = decryptRounds(client, plugin.socket, { ciphertext: pluginCiphertext, key_id: 'aws', annotations: {} }, k);
    for (const latencyMs of latencies) {
      await aws.clearFaults();
      if (latencyMs > 0) await aws.fault({ kind: 'latency', ms: latencyMs });
      const acc = { direct: [], plugin: [], shim: [], brokerOwnMs: [], brokerProviderMs: [], shimCpuUs: [], brokerCpuUs: [] };
      const opts = { seconds, concurrency: 1, warmupSeconds: 0.5 };
      for (let r = 0; r < rounds; r++) {
        const d = await measure(directUnwrap, opts);
        const p = await viaPlugin(opts);
        const m0 = await scrape(stack.ports.http);
        const c0 = { shim: cpuSeconds(stack.pids.shim), broker: cpuSeconds(stack.pids.broker) };
        const s = await viaShim(opts);
        // CPU per call includes the warm-up calls: divide by every call the broker answered in the window.
        const m1 = await scrape(stack.ports.http);
        const n = m1.reqCount - m0.reqCount;
        acc.shimCpuUs.push(((cpuSeconds(stack.pids.shim) - c0.shim) * 1e6) / n);
        acc.brokerCpuUs.push(((cpuSeconds(stack.pids.broker) - c0.broker) * 1e6) / n);
        const req = (m1.reqSum - m0.reqSum) / n;
        const prov = (m1.provSum - m0.provSum) / (m1.provCount - m0.provCount);
        acc.direct.push(d);
        acc.plugin.push(p);
        acc.shim.push(s);
        acc.brokerOwnMs.push((req - prov) * 1000);
        acc.brokerProviderMs.push(prov * 1000);
        console.log(`  ${latencyMs} ms, round ${r + 1}: KMS time p50 ${d.p50.toFixed(2)} ms, bare plugin p50 ${p.p50.toFixed(2)} ms, kekbroker p50 ${s.p50.toFixed(2)} ms; broker: provider call ${(prov * 1000).toFixed(2)} ms + own ${((req - prov) * 1000).toFixed(3)} ms (means)`);
      }
      const pick = (xs, f) => median(xs.map((x) => x[f]));
      const summary = (xs) => ({ p50: pick(xs, 'p50'), p99: pick(xs, 'p99'), errors: xs.reduce((a, x) => a + x.errors, 0) });
      results.push({
        latencyMs,
        client,
        direct: summary(acc.direct),
        plugin: summary(acc.plugin),
        shim: summary(acc.shim),
        brokerOwnMs: median(acc.brokerOwnMs),
        brokerProviderMs: median(acc.brokerProviderMs),
        shimCpuUs: median(acc.shimCpuUs),
        brokerCpuUs: median(acc.brokerCpuUs),
      });
    }
  } finally {
    await provider.close();
    await plugin.stop();
    await stack.stop();
    await aws.close();
  }
  return results;
}

function report(results) {
  return results.map((r) => table(r)).join('\n');
}

function table(r) {
  const pct = (ms) => `${ms.toFixed(2)} ms = ${((100 * ms) / r.direct.p50).toFixed(1)}%`;
  return [
    '',
    `Cold Decrypt (broker cache off), AWS emulator (own process) + ${r.latencyMs} ms injected latency, c=1, KMS v2 client ${r.client}, medians of the rounds, ms`,
    '| path | p50 | p99 | errors |',
    '|---|---:|---:|---:|',
    `| AWS provider unwrap in this process (the KMS time) | ${r.direct.p50.toFixed(2)} | ${r.direct.p99.toFixed(2)} | ${r.direct.errors} |`,
    `| bare single-cloud KMS v2 plugin (one hop, one AWS KMS Decrypt) | ${r.plugin.p50.toFixed(2)} | ${r.plugin.p99.toFixed(2)} | ${r.plugin.errors} |`,
    `| kekbroker: shim (Session stream) + broker | ${r.shim.p50.toFixed(2)} | ${r.shim.p99.toFixed(2)} | ${r.shim.errors} |`,
    `| **broker overhead (p50): kekbroker − bare plugin** | **${pct(r.shim.p50 - r.plugin.p50)}** of the KMS time | | |`,
    `| kekbroker − KMS time (the apiserver → plugin hop included) | ${pct(r.shim.p50 - r.direct.p50)} | | |`,
    `| the broker's own work (mean request − mean provider call, from /metrics) | ${pct(r.brokerOwnMs)} | | |`,
    `| the broker's provider call (mean, from /metrics) | ${r.brokerProviderMs.toFixed(2)} | | |`,
    `| CPU per call: shim ${r.shimCpuUs.toFixed(0)} µs, broker ${r.brokerCpuUs.toFixed(0)} µs (AWS SDK call included) | | | |`,
  ].join('\n');
}

module.exports = { run, report };

if (require.main === module) run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });

// KMS v2 Decrypt through the real shim + broker on a warm cache, next to a bare grpc-js two-hop echo
// measured in the same run. The load generator (BENCH_KMS_CLIENT) is by default a grpc-go client, as
// kube-apiserver is (`go`, bench/go/kms-load); `grpc-js` is a grpc-js client, `h2` a minimal gRPC client on
// node:http2. Interleaved rounds (echo, kekbroker, echo, kekbroker, ...) so that noise from other work on the
// box hits both alike; medians are reported.
'use strict';
const crypto = require('node:crypto');
const { kmsV2 } = require('@kekbroker/proto');
const { measure, fmt, median } = require('./lib/measure');
const { startKekbroker, startEcho, cpuSeconds } = require('./lib/procs');
const { h2GrpcClient } = require('./lib/h2-client');
const { kmsV2Client } = require('./lib/kms-client');
const { goMeasure } = require('./lib/go-client');

const CLIENTS = ['go', 'grpc-js', 'h2'];
const clientName = () => {
  const c = process.env.BENCH_KMS_CLIENT || 'go';
  if (!CLIENTS.includes(c)) throw new Error(`BENCH_KMS_CLIENT=${c}: use one of ${CLIENTS.join(', ')}`);
  return c;
};

function kmsClient(socket) {
  if (process.env.BENCH_KMS_CLIENT === 'h2') {
    const c = h2GrpcClient(socket, kmsV2().KeyManagementService.service);
    return { call: (m, req) => c.call(m, req), close: c.close };
  }
  return kmsV2Client(socket);
}

async function run({ seconds = 5, rounds = 3, concurrencies = [1, 16, 64] } = {}) {
  const kek = await startKekbroker();
  const echo = await startEcho();
  const k = kmsClient(kek.socket);
  const e = kmsClient(echo.socket);
  try {
    // 64 distinct seeds, as after an apiserver restart; warm: each was wrapped by this broker.
    // Every answer is compared with the seed it must be (the echo's with the bytes it must echo).
    const sealed = [];
    for (let i = 0; i < 64; i++) {
      const seed = crypto.randomBytes(32);
      sealed.push({ seed, ...(await k.call('Encrypt', { plaintext: Buffer.from(seed), uid: `b${i}` })) });
    }
    let i = 0;
    const next = () => sealed[i++ % sealed.length];
    const kekDecrypt = async () => {
      const s = next();
      const r = await k.call('Decrypt', { ciphertext: s.ciphertext, key_id: s.key_id, annotations: s.annotations, uid: 'bench' });
      return r.plaintext.equals(s.seed) ? undefined : `kekbroker Decrypt returned ${r.plaintext.every((b) => b === 0) ? '32 zero bytes' : 'the wrong bytes'} with OK`;
    };
    const echoDecrypt = async () => {
      const s = next();
      const r = await e.call('Decrypt', { ciphertext: s.ciphertext, key_id: s.key_id, uid: 'bench' });
      return r.plaintext.equals(s.ciphertext.subarray(0, 32)) ? undefined : 'echo returned the wrong bytes';
    };
    // The Go client makes the same calls and checks the same answers in its own process.
    const go = clientName() === 'go';
    const goCases = {
      kek: sealed.map((s) => ({ ...s, expected: s.seed })),
      echo: sealed.map((s) => ({ ciphertext: s.ciphertext, key_id: s.key_id, expected: s.ciphertext.subarray(0, 32) })),
    };
    const round = (name, fn, opts) => (go ? goMeasure(name === 'kek' ? kek.socket : echo.socket, goCases[name], opts) : measure(fn, opts));

    const results = [];
    for (const concurrency of concurrencies) {
      const acc = { echo: [], kek: [] };
      for (let r = 0; r < rounds; r++) {
        for (const [name, fn, pids] of [['echo', echoDecrypt, echo.pids], ['kek', kekDecrypt, kek.pids]]) {
          const c0 = { shim: cpuSeconds(pids.shim), broker: cpuSeconds(pids.broker) };
          const m = await round(name, fn, { seconds, concurrency });
          // The servers' CPU is read around the whole round, warm-up included: divide by every call made.
          const made = m.calls + m.warmupCalls + m.errors + m.wrong;
          m.shimCpuUsPerCall = ((cpuSeconds(pids.shim) - c0.shim) * 1e6) / made;
          m.brokerCpuUsPerCall = ((cpuSeconds(pids.broker) - c0.broker) * 1e6) / made;
          acc[name].push(m);
          console.log(`  c=${concurrency} round ${r + 1} ${name === 'kek' ? 'kekbroker ' : 'bare echo '}${fmt(m)}`);
        }
      }
      const pick = (xs, f) => median(xs.map((x) => x[f]));
      const summary = (xs) => ({ rps: pick(xs, 'rps'), p50: pick(xs, 'p50'), p99: pick(xs, 'p99'), errors: xs.reduce((a, x) => a + x.errors, 0), wrong: xs.reduce((a, x) => a + x.wrong, 0), clientCpuUsPerCall: pick(xs, 'clientCpuUsPerCall'), shimCpuUsPerCall: pick(xs, 'shimCpuUsPerCall'), brokerCpuUsPerCall: pick(xs, 'brokerCpuUsPerCall') });
      results.push({ concurrency, echo: summary(acc.echo), kekbroker: summary(acc.kek) });
    }
    return results;
  } finally {
    k.close();
    e.close();
    await kek.stop();
    await echo.stop();
  }
}

function report(results) {
  const lines = ['', `KMS v2 Decrypt, warm cache (medians; load generator: ${clientName()}${clientName() === 'go' ? `, GOMAXPROCS=${process.env.BENCH_GO_MAXPROCS || 1}` : ''})`, '| concurrency | path | req/s | p50 ms | p99 ms | client CPU µs/call | shim CPU µs/call | broker CPU µs/call | errors | wrong |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of results) {
    for (const [name, x] of [['bare grpc-js echo (unary, 2 hops)', r.echo], ['kekbroker shim + broker', r.kekbroker]]) {
      lines.push(`| ${r.concurrency} | ${name} | ${x.rps.toFixed(0)} | ${x.p50.toFixed(3)} | ${x.p99.toFixed(3)} | ${x.clientCpuUsPerCall.toFixed(0)} | ${x.shimCpuUsPerCall.toFixed(0)} | ${x.brokerCpuUsPerCall.toFixed(0)} | ${x.errors} | ${x.wrong} |`);
    }
    lines.push(`| ${r.concurrency} | **ratio kekbroker / echo** | ${(r.kekbroker.rps / r.echo.rps).toFixed(2)}× | ${(r.kekbroker.p50 / r.echo.p50).toFixed(2)}× | ${(r.kekbroker.p99 / r.echo.p99).toFixed(2)}× | | | | | |`);
  }
  return lines.join('\n');
}

module.exports = { run, report };

if (require.main === module) {
  run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });
}

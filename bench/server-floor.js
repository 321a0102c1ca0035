// What the shim's gRPC server layer costs: the same grpc-go KMS v2 client (as kube-apiserver) against two
// one-process servers that answer Decrypt themselves (bench/echo/local-kms-server.js), one on grpc-js (what the
// kms-shim uses) and one a bare unary gRPC server on node:http2 with the same protobuf codec. No broker, no
// second hop: the difference is the server layer alone, i.e. what replacing grpc-js in the shim could save at
// most. Interleaved rounds, medians; every plaintext compared with the bytes it must be.
'use strict';
const crypto = require('node:crypto');
const { median } = require('./lib/measure');
const { cpuSeconds, startLocalKmsServer } = require('./lib/procs');
const { goMeasure } = require('./lib/go-client');

const KINDS = [['grpc-js', 'grpc-js server (as the kms-shim)'], ['h2', 'bare node:http2 unary server']];

async function run({ seconds = 5, rounds = 3, concurrencies = [1, 16, 64] } = {}) {
  const servers = {};
  for (const [kind] of KINDS) servers[kind] = await startLocalKmsServer(kind);
  // 64 distinct 100-byte "ciphertexts"; the answer must be each one's first 32 bytes.
  const cases = Array.from({ length: 64 }, () => {
    const ciphertext = crypto.randomBytes(100);
    return { ciphertext, key_id: 'floor', expected: ciphertext.subarray(0, 32) };
  });
  const results = [];
  try {
    for (const concurrency of concurrencies) {
      const acc = Object.fromEntries(KINDS.map(([k]) => [k, []]));
      for (let r = 0; r < rounds; r++) {
        for (const [kind] of KINDS) {
          const s = servers[kind];
          const c0 = cpuSeconds(s.pid);
          const m = await goMeasure(s.socket, cases, { seconds, concurrency });
          m.serverCpuUsPerCall = ((cpuSeconds(s.pid) - c0) * 1e6) / (m.calls + m.warmupCalls + m.errors + m.wrong);
          acc[kind].push(m);
          console.log(`  c=${concurrency} round ${r + 1} ${kind}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50.toFixed(3)} ms, server ${m.serverCpuUsPerCall.toFixed(0)} µs/call (${m.errors} errors, ${m.wrong} wrong)`);
        }
      }
      const pick = (xs, f) => median(xs.map((x) => x[f]));
      const row = {};
      for (const [kind] of KINDS) {
        const xs = acc[kind];
        row[kind] = { rps: pick(xs, 'rps'), p50: pick(xs, 'p50'), cpu: pick(xs, 'serverCpuUsPerCall'), errors: xs.reduce((a, x) => a + x.errors, 0), wrong: xs.reduce((a, x) => a + x.wrong, 0) };
      }
      results.push({ concurrency, ...row });
    }
  } finally {
    for (const s of Object.values(servers)) await s.stop();
  }
  return results;
}

function report(results) {
  const lines = ['', `KMS v2 Decrypt answered by the server itself (medians; load generator: go, GOMAXPROCS=${process.env.BENCH_GO_MAXPROCS || 1})`, '| concurrency | server | req/s | p50 ms | server CPU µs/call | errors | wrong |', '|---|---|---:|---:|---:|---:|---:|'];
  for (const r of results) {
    for (const [kind, name] of KINDS) {
      const x = r[kind];
      lines.push(`| ${r.concurrency} | ${name} | ${x.rps.toFixed(0)} | ${x.p50.toFixed(3)} | ${x.cpu.toFixed(0)} | ${x.errors} | ${x.wrong} |`);
    }
    lines.push(`| ${r.concurrency} | **grpc-js layer (grpc-js − bare)** | | ${(r['grpc-js'].p50 - r.h2.p50).toFixed(3)} | ${(r['grpc-js'].cpu - r.h2.cpu).toFixed(0)} | | |`);
  }
  return lines.join('\n');
}

module.exports = { run, report };

if (require.main === module) run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });

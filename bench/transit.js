// Transit encrypt/decrypt (1 KiB plaintext; single items and batch_input of 100) through the real broker's
// Vault-compatible HTTP API, next to a bare fastify JSON echo route with the same bodies, measured in the
// same run (interleaved: echo, transit, echo, transit, ...). Every answer is checked: decrypts must return
// the plaintext that was encrypted; every ciphertext an encrypt returned is decrypted afterwards and
// compared. Also: KMS calls (provider wraps) per 10,000 encrypts, from the broker's own metrics.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { measure, fmt, median } = require('./lib/measure');
const { ROOT, freePort, waitFor, cpuSeconds } = require('./lib/procs');

const TOKEN = 'bench-transit-token';

async function startTransit() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-transit-'));
  const [grpc, httpPort, admin, transit] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const sha = crypto.createHash('sha256').update(TOKEN).digest('hex');
  fs.writeFileSync(path.join(dir, 'broker.yaml'), `grpc: { listen: "127.0.0.1:${grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${httpPort}" }
admin: { listen: "127.0.0.1:${admin}" }
providers:
  local: { type: local, keystore: ./keystore.json }
keyrings:
  default: { providers: [local] }
tenants:
  dev: { keyrings: [default] }
transit:
  enabled: true
  listen: "127.0.0.1:${transit}"
  keys: { app: { keyring: default } }
  identities: [{ tokenSha256: "${sha}", tenant: dev }]
log: { level: warn, audit: false }
`);
  const log = fs.openSync(path.join(dir, 'broker.log'), 'a');
  // KEKBROKER_BENCH_BROKER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof": profile the broker under this load
  // (KEKBROKER_BENCH_ECHO_NODE_ARGS: the echo).
  const nodeArgs = (process.env.KEKBROKER_BENCH_BROKER_NODE_ARGS || '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'services/broker/dist/main.js'), '--config', 'broker.yaml'], { cwd: dir, stdio: ['ignore', log, log] });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200);
  return { pid: child.pid, port: transit, metricsPort: httpPort, stop: () => stopChild(child) };
}

async function startEchoHttp() {
  const port = await freePort();
  const nodeArgs = (process.env.KEKBROKER_BENCH_ECHO_NODE_ARGS || '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, path.join(__dirname, 'echo/echo-http.js'), String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/`)).status === 404);
  return { pid: child.pid, port, stop: () => stopChild(child) };
}

function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
}

/** A keep-alive JSON POST client (node:http; lighter than fetch, the same for both servers). */
function client(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
  return (p, body) => new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'x-vault-token': TOKEN } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
        resolve(JSON.parse(text).data);
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function wrapCalls(metricsPort) {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith('kekbroker_provider_calls_total{') && line.includes('op="wrap"')) n += Number(line.split(' ').pop());
  return n;
}

async function run({ seconds = 3, rounds = 2, concurrencies = [1, 16, 64], only } = {}) {
  const transit = await startTransit();
  const echo = await startEchoHttp();
  const t = client(transit.port);
  const e = client(echo.port);
  try {
    const plaintexts = Array.from({ length: 64 }, () => crypto.randomBytes(1024).toString('base64'));
    // Ciphertexts to decrypt, made by this broker; the echo "decrypts" its own echo of the plaintext.
    const sealed = [];
    for (const p of plaintexts) sealed.push({ pt: p, ct: (await t('/v1/transit/encrypt/app', { plaintext: p })).ciphertext });
    let i = 0;
    const next = () => sealed[i++ % sealed.length];
    const batchOf = () => Array.from({ length: 100 }, next);
    const produced = []; // [plaintext, ciphertext] pairs from measured encrypts, checked after the run

    const check = (cond, what) => { if (!cond) throw new Error(`wrong answer: ${what}`); };
    const scenarios = {
      'encrypt 1 KiB': {
        items: 1,
        transit: async () => { const s = next(); const r = await t('/v1/transit/encrypt/app', { plaintext: s.pt }); check(r.ciphertext.startsWith('vault:v'), 'ciphertext'); produced.push([s.pt, r.ciphertext]); },
        echo: async () => { const s = next(); const r = await e('/v1/transit/encrypt/app', { plaintext: s.pt }); check(r.ciphertext === s.pt, 'echo'); },
      },
      'decrypt 1 KiB': {
        items: 1,
        transit: async () => { const s = next(); const r = await t('/v1/transit/decrypt/app', { ciphertext: s.ct }); check(r.plaintext === s.pt, 'decrypt'); },
        echo: async () => { const s = next(); const r = await e('/v1/transit/decrypt/app', { ciphertext: s.pt }); check(r.plaintext === s.pt, 'echo'); },
      },
      'encrypt batch 100 × 1 KiB': {
        items: 100,
        transit: async () => {
          const b = batchOf();
          const r = await t('/v1/transit/encrypt/app', { batch_input: b.map((s) => ({ plaintext: s.pt })) });
          check(r.batch_results.length === 100, 'batch size');
          r.batch_results.forEach((x, k) => { check(!x.error, x.error); if (k % 10 === 0) produced.push([b[k].pt, x.ciphertext]); });
        },
        echo: async () => { const b = batchOf(); const r = await e('/v1/transit/encrypt/app', { batch_input: b.map((s) => ({ plaintext: s.pt })) }); r.batch_results.forEach((x, k) => check(x.ciphertext === b[k].pt, 'echo')); },
      },
      'decrypt batch 100 × 1 KiB': {
        items: 100,
        transit: async () => { const b = batchOf(); const r = await t('/v1/transit/decrypt/app', { batch_input: b.map((s) => ({ ciphertext: s.ct })) }); r.batch_results.forEach((x, k) => check(x.plaintext === b[k].pt, 'batch decrypt')); },
        echo: async () => { const b = batchOf(); const r = await e('/v1/transit/decrypt/app', { batch_input: b.map((s) => ({ ciphertext: s.pt })) }); r.batch_results.forEach((x, k) => check(x.plaintext === b[k].pt, 'echo')); },
      },
    };

    const results = [];
    for (const [name, sc] of Object.entries(scenarios).filter(([n]) => !only || only.includes(n))) {
      for (const concurrency of concurrencies) {
        const acc = { echo: [], transit: [] };
        for (let r = 0; r < rounds; r++) {
          for (const [which, fn, pid] of [['echo', sc.echo, echo.pid], ['transit', sc.transit, transit.pid]]) {
            const c0 = cpuSeconds(pid);
            const m = await measure(fn, { seconds, concurrency });
            m.serverCpuUsPerCall = ((cpuSeconds(pid) - c0) * 1e6) / m.calls;
            acc[which].push(m);
            console.log(`  ${name} c=${concurrency} round ${r + 1} ${which.padEnd(7)} ${fmt(m)}`);
          }
        }
        const pick = (xs, f) => median(xs.map((x) => x[f]));
        const sum = (xs) => ({ rps: pick(xs, 'rps'), p50: pick(xs, 'p50'), p99: pick(xs, 'p99'), cpu: pick(xs, 'serverCpuUsPerCall'), errors: xs.reduce((a, x) => a + x.errors, 0), calls: xs.reduce((a, x) => a + x.calls, 0) });
        results.push({ name, items: sc.items, concurrency, echo: sum(acc.echo), transit: sum(acc.transit) });
      }
    }

    // Every ciphertext an encrypt returned (all singles; every 10th batch item) must decrypt to its plaintext.
    let verified = 0;
    for (let k = 0; k < produced.length; k += 100) {
      const chunk = produced.slice(k, k + 100);
      const r = await t('/v1/transit/decrypt/app', { batch_input: chunk.map(([, ct]) => ({ ciphertext: ct })) });
      r.batch_results.forEach((x, j) => check(x.plaintext === chunk[j][0], 'encrypt round trip'));
      verified += chunk.length;
    }

    // KMS calls per 10,000 encrypts (single requests at c=16), counted by the broker's provider-call metric.
    const w0 = await wrapCalls(transit.metricsPort);
    let left = 10_000;
    await Promise.all(Array.from({ length: 16 }, async () => { while (left-- > 0) await t('/v1/transit/encrypt/app', { plaintext: plaintexts[left % 64] }); }));
    const kmsPer10k = (await wrapCalls(transit.metricsPort)) - w0;
    // Since start: the first data key of (app, generation, dev) was the only KMS wrap of the whole run.
    const kmsSinceStart = await wrapCalls(transit.metricsPort);
    return { results, verified, kmsPer10k, kmsSinceStart };
  } finally {
    await transit.stop();
    await echo.stop();
  }
}

function report({ results, verified, kmsPer10k, kmsSinceStart }) {
  const lines = ['', 'Transit over HTTP vs a bare fastify JSON echo (medians; items/s = req/s × items per request)',
    '| operation | c | path | req/s | items/s | p50 ms | p99 ms | server CPU µs/req | errors |', '|---|---:|---|---:|---:|---:|---:|---:|---:|'];
  for (const r of results) {
    for (const [label, x] of [['fastify echo', r.echo], ['kekbroker transit', r.transit]]) {
      lines.push(`| ${r.name} | ${r.concurrency} | ${label} | ${x.rps.toFixed(0)} | ${(x.rps * r.items).toFixed(0)} | ${x.p50.toFixed(2)} | ${x.p99.toFixed(2)} | ${x.cpu.toFixed(0)} | ${x.errors} |`);
    }
    lines.push(`| ${r.name} | ${r.concurrency} | **transit / echo** | **${(r.transit.rps / r.echo.rps).toFixed(2)}×** | | ${(r.transit.p50 / r.echo.p50).toFixed(2)}× | ${(r.transit.p99 / r.echo.p99).toFixed(2)}× | | |`);
  }
  lines.push('', `Encrypt answers verified by decrypting them afterwards: ${verified}; every decrypt answer compared inline.`);
  lines.push(`KMS calls (provider wraps) for 10,000 single encrypts on a warm data key: **${kmsPer10k}**; for the whole run (every encrypt above, on one data key lifetime): **${kmsSinceStart}**.`);
  return lines.join('\n');
}

module.exports = { run, report };

if (require.main === module) {
  run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });
}

// Warm KMS v2 Decrypt through the real shim, three paths in interleaved rounds of the same run:
//   (a) the bare grpc-js two-hop echo (the kms-v2-decrypt baseline),
//   (b) kekbroker, L1 hit: replica b1 of a two-replica fleet, which wrapped the seeds (normal warm cache),
//   (c) kekbroker, L1 miss / L2 hit: replica b2 of the same fleet, configured with `cache.maxEntries: 0`
//       (L1 off) and which never wrapped nor unwrapped the seeds: every Decrypt reads the sealed entry b1
//       left in Redis and opens it. Its /metrics must show it: kekbroker_cache_l2_hits grows by exactly the
//       number of calls and kekbroker_cache_loads does not grow (no KMS call); otherwise the bench fails.
// Real processes: a redis-server, two brokers (local provider, one shared keystore), a kms-shim per broker,
// the echo pair. Each in-flight call holds its own seed (a pool larger than the concurrency), so no two
// concurrent calls share a cache key and the broker's in-process single-flight never merges two of them:
// one call is one L2 read. Every plaintext is compared with its seed.
'use strict';
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Redis = require('ioredis');
const { kmsV2Client } = require('./lib/kms-client');
const { measure, fmt, median } = require('./lib/measure');
const { ROOT, freePort, startEcho, cpuSeconds, waitFor } = require('./lib/procs');

const SEEDS = 256;
const TOKEN = 'bench-token';

function proc(cmd, args, cwd, log) {
  const fd = fs.openSync(path.join(cwd, log), 'a');
  return spawn(cmd, args, { cwd, stdio: ['ignore', fd, fd] });
}
const stop = (c) => new Promise((r) => (c.exitCode !== null || c.signalCode ? r() : (c.once('exit', r), c.kill('SIGTERM'))));

/** One fleet replica + its shim. `cache`: the broker's cache section (YAML flow map). */
async function startReplica(dir, id, redisPort, cache) {
  const p = { grpc: await freePort(), http: await freePort(), admin: await freePort() };
  fs.writeFileSync(path.join(dir, `${id}.yaml`), `grpc: { listen: "127.0.0.1:${p.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${p.http}" }
admin: { listen: "127.0.0.1:${p.admin}", tokenFile: ./admin.token }
providers:
  local: { type: local, keystore: ./keystore.json }
keyrings:
  default: { providers: [local] }
tenants:
  dev: { keyrings: [default] }
cache: ${cache}
redis: { nodes: ["127.0.0.1:${redisPort}"] }
ha: { replicaId: ${id} }
log: { level: warn, audit: false }
`);
  const broker = proc(process.execPath, [path.join(ROOT, 'services/broker/dist/main.js'), '--config', `${id}.yaml`], dir, `${id}.log`);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${p.http}/readyz`)).status === 200, 30000);
  // The shared L2 is used only once this replica has opened the keyring's cache-sealing key.
  await waitFor(async () => {
    const s = await (await fetch(`http://127.0.0.1:${p.admin}/v1/admin/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    return s.fleet.sealingKeys.length > 0 && s.fleet.sealingKeys.every((k) => k.open);
  }, 30000);
  const socket = path.join(dir, `${id}.sock`);
  const shim = proc(process.execPath, [path.join(ROOT, 'services/kms-shim/dist/main.js'), '--socket', socket, '--broker', `127.0.0.1:${p.grpc}`, '--insecure-dev-tenant', 'dev', '--log-level', 'warn'], dir, `${id}-shim.log`);
  await waitFor(async () => fs.existsSync(socket));
  return { id, ports: p, socket, pids: { broker: broker.pid, shim: shim.pid }, stop: async () => { await stop(shim); await stop(broker); } };
}

/** The broker's cache counters, from its /metrics. */
async function cacheCounters(replica) {
  const text = await (await fetch(`http://127.0.0.1:${replica.ports.http}/metrics`)).text();
  const get = (name) => {
    const m = new RegExp(`^kekbroker_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`${replica.id} /metrics has no kekbroker_${name}`);
    return Number(m[1]);
  };
  return { l1Hits: get('cache_hits'), l2Hits: get('cache_l2_hits'), loads: get('cache_loads'), l2Writes: get('cache_l2_writes'), shared: /^kekbroker_cache_shared\{[^}]*keyring="default"[^}]*\} 1$/m.test(text) };
}

/** Seeds are leased: a call takes one no other in-flight call holds, and gives it back when answered. */
function seedPool(sealed) {
  const free = [...sealed];
  return { take: () => free.shift(), give: (s) => free.push(s) };
}

async function run({ seconds = 5, rounds = 3, concurrencies = [1, 16, 64] } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-l2-'));
  fs.writeFileSync(path.join(dir, 'admin.token'), TOKEN, { mode: 0o600 });
  const redisPort = await freePort();
  const redis = proc('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], dir, 'redis.log');
  const stops = [() => stop(redis)];
  const closes = [];
  try {
    const l1 = await startReplica(dir, 'b1', redisPort, '{}');
    stops.unshift(l1.stop);
    const l2 = await startReplica(dir, 'b2', redisPort, '{ maxEntries: 0 }');
    stops.unshift(l2.stop);
    const echo = await startEcho();
    stops.unshift(echo.stop);
    const clients = { echo: kmsV2Client(echo.socket), l1: kmsV2Client(l1.socket), l2: kmsV2Client(l2.socket) };
    closes.push(...Object.values(clients).map((c) => () => c.close()));

    // SEEDS distinct seeds, wrapped through b1: b1 keeps each in its L1 and writes it, sealed, to L2.
    const sealed = [];
    for (let i = 0; i < SEEDS; i++) {
      const seed = crypto.randomBytes(32);
      sealed.push({ seed, ...(await clients.l1.call('Encrypt', { plaintext: Buffer.from(seed), uid: `l2-${i}` })) });
    }
    await waitFor(async () => (await cacheCounters(l1)).l2Writes >= SEEDS, 20000).catch(async (e) => { throw new Error(`b1 wrote ${(await cacheCounters(l1)).l2Writes} of ${SEEDS} seeds to L2 after 20 s (${e.message})`); });
    for (const r of [l1, l2]) if (!(await cacheCounters(r)).shared) throw new Error(`${r.id} does not use the shared L2 (kekbroker_cache_shared 0): no L2 figure possible`);

    const pool = seedPool(sealed);
    let attempts = 0;
    const kekDecrypt = (client, label) => async () => {
      const s = pool.take();
      attempts++;
      try {
        const r = await client.call('Decrypt', { ciphertext: s.ciphertext, key_id: s.key_id, annotations: s.annotations, uid: 'bench' });
        return r.plaintext.equals(s.seed) ? undefined : `${label} Decrypt returned ${r.plaintext.every((b) => b === 0) ? '32 zero bytes' : 'the wrong bytes'} with OK`;
      } finally {
        pool.give(s);
      }
    };
    const echoDecrypt = async () => {
      const s = pool.take();
      try {
        const r = await clients.echo.call('Decrypt', { ciphertext: s.ciphertext, key_id: s.key_id, uid: 'bench' });
        return r.plaintext.equals(s.ciphertext.subarray(0, 32)) ? undefined : 'echo returned the wrong bytes';
      } finally {
        pool.give(s);
      }
    };
    const paths = [
      { name: 'echo', fn: echoDecrypt, pids: echo.pids },
      { name: 'l1', fn: kekDecrypt(clients.l1, 'kekbroker (L1 hit)'), pids: l1.pids, replica: l1 },
      { name: 'l2', fn: kekDecrypt(clients.l2, 'kekbroker (L1 miss / L2 hit)'), pids: l2.pids, replica: l2 },
    ];
    const redisRtt = await redisRoundTrip(redisPort, seconds);
    console.log(`  bare Redis GET of a sealed entry from this process: ${fmt(redisRtt)}`);

    const results = [];
    for (const concurrency of concurrencies) {
      const acc = { echo: [], l1: [], l2: [] };
      for (let r = 0; r < rounds; r++) {
        for (const p of paths) {
          const c0 = { shim: cpuSeconds(p.pids.shim), broker: cpuSeconds(p.pids.broker), redis: cpuSeconds(redis.pid) };
          const before = p.replica && (await cacheCounters(p.replica));
          attempts = 0;
          const m = await measure(p.fn, { seconds, concurrency });
          m.shimCpuUsPerCall = ((cpuSeconds(p.pids.shim) - c0.shim) * 1e6) / m.calls;
          m.brokerCpuUsPerCall = ((cpuSeconds(p.pids.broker) - c0.broker) * 1e6) / m.calls;
          m.redisCpuUsPerCall = ((cpuSeconds(redis.pid) - c0.redis) * 1e6) / m.calls;
          if (p.replica) checkServedFrom(p, before, await cacheCounters(p.replica), attempts, m);
          acc[p.name].push(m);
          console.log(`  c=${concurrency} round ${r + 1} ${p.name.padEnd(4)} ${fmt(m)}`);
        }
      }
      const pick = (xs, f) => median(xs.map((x) => x[f]));
      const summary = (xs) => ({
        rps: pick(xs, 'rps'), p50: pick(xs, 'p50'), p99: pick(xs, 'p99'),
        errors: xs.reduce((a, x) => a + x.errors, 0), wrong: xs.reduce((a, x) => a + x.wrong, 0),
        shimCpuUsPerCall: pick(xs, 'shimCpuUsPerCall'), brokerCpuUsPerCall: pick(xs, 'brokerCpuUsPerCall'), redisCpuUsPerCall: pick(xs, 'redisCpuUsPerCall'),
        attempts: xs.reduce((a, x) => a + (x.attempts ?? 0), 0), served: xs.reduce((a, x) => a + (x.served ?? 0), 0),
      });
      results.push({ concurrency, echo: summary(acc.echo), l1: summary(acc.l1), l2: summary(acc.l2) });
    }
    return { results, redisRtt, seeds: SEEDS };
  } finally {
    for (const c of closes) c();
    for (const s of stops) await s();
  }
}

/**
 * The proof that a path was served where it claims: during the round (warm-up included) the L2 path made no
 * KMS call and one L2 hit per call; the L1 path made no KMS call and no L2 read. A round that was not is no figure.
 */
function checkServedFrom(p, before, after, attempts, m) {
  const d = { l1Hits: after.l1Hits - before.l1Hits, l2Hits: after.l2Hits - before.l2Hits, loads: after.loads - before.loads };
  const fail = (why) => { throw new Error(`${p.replica.id}: ${why} (${attempts} calls, metrics delta ${JSON.stringify(d)}): the figure is not what it claims`); };
  if (d.loads !== 0) fail('the broker called the KMS (kekbroker_cache_loads grew)');
  if (m.errors) fail(`${m.errors} calls failed`);
  if (p.name === 'l2') {
    if (d.l1Hits !== 0) fail('L1 answered with cache.maxEntries: 0');
    if (d.l2Hits !== attempts) fail('kekbroker_cache_l2_hits did not grow by the number of calls');
  } else {
    if (d.l2Hits !== 0) fail('the L1 path read L2');
    if (d.l1Hits !== attempts) fail('kekbroker_cache_hits did not grow by the number of calls');
  }
  m.served = p.name === 'l2' ? d.l2Hits : d.l1Hits;
  m.attempts = attempts;
}

/** A GET of one real sealed L2 entry from this process (ioredis, c=1): the bare Redis round trip on this box. */
async function redisRoundTrip(port, seconds) {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  try {
    const [, keys] = await r.scan('0', 'MATCH', 'kekbroker:*', 'COUNT', 1000);
    let key;
    for (const k of keys) if ((await r.type(k)) === 'string' && !(await r.pttl(k) < 0)) { const v = await r.getBuffer(k); if (v && v.length > 32) { key = k; break; } }
    if (!key) throw new Error('no sealed L2 entry found in Redis');
    const want = await r.getBuffer(key);
    return await measure(async () => ((await r.getBuffer(key)).equals(want) ? undefined : 'Redis returned another value for the same L2 entry'), { seconds: Math.min(seconds, 3), concurrency: 1 });
  } finally {
    r.disconnect();
  }
}

function report({ results, redisRtt, seeds }) {
  const names = { echo: 'bare grpc-js echo (unary, 2 hops)', l1: 'kekbroker, L1 hit', l2: 'kekbroker, L1 miss / L2 hit' };
  const lines = ['', `KMS v2 Decrypt through the shim, warm (${seeds} distinct seeds; medians)`,
    '| c | path | req/s | p50 ms | p99 ms | shim CPU µs/call | broker CPU µs/call | redis CPU µs/call | errors | wrong |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of results) {
    for (const k of ['echo', 'l1', 'l2']) {
      const x = r[k];
      lines.push(`| ${r.concurrency} | ${names[k]} | ${x.rps.toFixed(0)} | ${x.p50.toFixed(3)} | ${x.p99.toFixed(3)} | ${x.shimCpuUsPerCall.toFixed(0)} | ${x.brokerCpuUsPerCall.toFixed(0)} | ${k === 'l2' ? x.redisCpuUsPerCall.toFixed(0) : ''} | ${x.errors} | ${x.wrong} |`);
    }
    for (const k of ['l1', 'l2']) {
      lines.push(`| ${r.concurrency} | **ratio ${k === 'l1' ? 'L1 hit' : 'L2 hit'} / echo** | ${(r[k].rps / r.echo.rps).toFixed(2)}× | ${(r[k].p50 / r.echo.p50).toFixed(2)}× | ${(r[k].p99 / r.echo.p99).toFixed(2)}× | | | | | |`);
    }
  }
  lines.push('', 'Redis round trip per call (the L2 path minus the L1 path):', '| c | + p50 ms | + broker CPU µs/call | redis-server CPU µs/call | kekbroker_cache_l2_hits growth / calls (warm-up included) | kekbroker_cache_loads growth |', '|---|---:|---:|---:|---|---:|');
  for (const r of results) {
    lines.push(`| ${r.concurrency} | ${(r.l2.p50 - r.l1.p50).toFixed(3)} | ${(r.l2.brokerCpuUsPerCall - r.l1.brokerCpuUsPerCall).toFixed(0)} | ${r.l2.redisCpuUsPerCall.toFixed(0)} | ${r.l2.served} / ${r.l2.attempts} | 0 |`);
  }
  lines.push('', `Bare ioredis GET of one sealed L2 entry from the bench process (c=1): p50 ${redisRtt.p50.toFixed(3)} ms, p99 ${redisRtt.p99.toFixed(3)} ms (${redisRtt.rps.toFixed(0)} GET/s).`);
  return lines.join('\n');
}

module.exports = { run, report };

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  run(quick ? { seconds: 2, rounds: 1 } : {}).then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });
}

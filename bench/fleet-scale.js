// Fleet scale: 1,000 shim-like connections on ONE broker replica (fleet mode: a redis-server, leader lease).
// Each connection is its own gRPC channel (own TCP connection, the shim's keepalive options) with a Session and
// a WatchStatus stream, like one kms-shim; they are simulated from a few client processes
// (bench/lib/fleet-scale-client.js, grpc-js, the broker's own protos). Measured on the broker process:
//   - RSS and CPU with 0 and with N connections, idle (heartbeat cost: every status stream gets a status
//     message every 5 s; keepalive pings every 10 s);
//   - time from an admin key rotation (a key_id change) until every status stream has seen the new key_id;
//   - a Wrap + Unwrap on every Session before and after the rotation, every answer compared with its seed;
//   - whether the broker printed a MaxListenersExceededWarning (one 'change' listener per status stream).
'use strict';
const { fork, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { cpuSeconds, freePort, startBroker, waitFor } = require('./lib/procs');
const { recordWrong } = require('./lib/measure');

const CLIENT_PROCESSES = 4;

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** One replica in fleet mode (its own redis-server, leader lease); resolves once it holds the lease. */
async function startFleetReplica() {
  const redisPort = await freePort();
  const redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-redis-'));
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], { stdio: 'ignore' });
  const b = await startBroker(`redis: { nodes: ["127.0.0.1:${redisPort}"] }\nha: { replicaId: b1 }`);
  await waitFor(async () => (await (await fetch(`http://127.0.0.1:${b.ports.http}/readyz`)).json()).leader === true, 30000);
  return { dir: b.dir, p: b.ports, broker: b.child, redis };
}

/** CPU ms per wall second the broker spends over `seconds` of doing nothing but keeping its streams. */
async function idleCpu(pid, seconds) {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return ((cpuSeconds(pid) - c0) * 1000) / ((performance.now() - t0) / 1000);
}

/** Send `cmd` to every client process; resolves with each one's first message that has field `key`. */
function ask(clients, cmd, key, extra = {}) {
  return Promise.all(clients.map((c) => new Promise((resolve, reject) => {
    const on = (m) => {
      if (m.error) return reject(new Error(m.error));
      if (m[key] === undefined) return;
      c.off('message', on);
      resolve(m);
    };
    c.on('message', on);
    if (cmd) c.send({ cmd, ...extra });
  })));
}

async function roundtrips(clients) {
  const rs = (await ask(clients, 'roundtrip', 'roundtrip')).map((m) => m.roundtrip);
  const sum = { ok: 0, wrong: 0, errors: 0, samples: rs.flatMap((r) => r.samples) };
  for (const r of rs) for (const k of ['ok', 'wrong', 'errors']) sum[k] += r[k];
  if (sum.wrong) recordWrong(sum.wrong, 'fleet-scale: an Unwrap on a Session returned bytes that are not the seed');
  return sum;
}

async function run(opts = {}) {
  const conns = opts.seconds && opts.seconds < 5 ? 200 : 1000;
  const idleSeconds = opts.seconds && opts.seconds < 5 ? 6 : 20;
  const { dir, p, broker, redis } = await startFleetReplica();
  const clients = [];
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const base = { rss: rssMiB(broker.pid), cpu: await idleCpu(broker.pid, idleSeconds / 2) };

    const t0 = performance.now();
    for (let i = 0; i < CLIENT_PROCESSES; i++) {
      clients.push(fork(path.join(__dirname, 'lib/fleet-scale-client.js'), [String(p.grpc), String(conns / CLIENT_PROCESSES)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
    const ready = await ask(clients, undefined, 'ready');
    const connectMs = performance.now() - t0;
    const keyIds = [...new Set(ready.flatMap((r) => r.keyIds))];
    if (keyIds.length !== 1) throw new Error(`status streams disagree on the key_id: ${keyIds.join(', ')}`);
    const before = await roundtrips(clients);

    await new Promise((r) => setTimeout(r, 3000)); // settle after the round trips
    await ask(clients, 'count', 'count');
    const cpu0 = cpuSeconds(broker.pid);
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleMs = performance.now() - w0;
    const loaded = { rss: rssMiB(broker.pid), cpu: ((cpuSeconds(broker.pid) - cpu0) * 1000) / (idleMs / 1000) };
    const statusPerSecond = (await ask(clients, 'count', 'count')).reduce((a, m) => a + m.count, 0) / (idleMs / 1000);

    // A key_id change: rotate the keyring; every status stream must see the new key_id.
    await ask(clients, 'watch', 'watching', { from: keyIds[0] });
    // Timed here, in the bench process (one clock): from sending the rotate until the last client process has
    // reported that all its streams saw the new key_id (IPC included: an upper bound).
    const reached = [];
    const seen = new Set();
    const changed = Promise.all(clients.map((c) => new Promise((resolve) => {
      const on = (m) => {
        if (!m.changed) return;
        c.off('message', on);
        reached.push(performance.now());
        for (const k of m.keyIds) seen.add(k);
        resolve();
      };
      c.on('message', on);
    })));
    const r0 = performance.now();
    const rot = await fetch(`http://127.0.0.1:${p.admin}/v1/admin/keyrings/default/rotate`, { method: 'POST', headers: { authorization: 'Bearer bench-token' } });
    const rotateMs = performance.now() - r0;
    if (rot.status !== 200) throw new Error(`rotate: ${rot.status} ${await rot.text()}`);
    const newKeyId = (await rot.json()).keyId;
    await changed;
    if (seen.size !== 1 || !seen.has(newKeyId)) throw new Error(`status streams show ${[...seen].join(", ")}, the rotate answered ${newKeyId}, before ${keyIds[0]}`);
    const at = reached.map((t) => t - r0).sort((a, b) => a - b);
    const after = await roundtrips(clients);

    const log = fs.readFileSync(path.join(dir, 'broker.log'), 'utf8');
    return {
      conns, connectMs, base, loaded, statusPerSecond, before, after,
      rotateMs, reachFirst: at[0], reachMax: at[at.length - 1],
      maxListenersWarning: /MaxListenersExceededWarning/.test(log),
    };
  } finally {
    for (const c of clients) if (c.connected) c.send({ cmd: 'stop' });
    await Promise.all(clients.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    broker.kill('SIGTERM');
    await new Promise((r) => (broker.exitCode === null ? broker.once('exit', r) : r()));
    redis.kill('SIGKILL');
  }
}

function report(r) {
  const f = (x) => x.toFixed(1);
  return [
    `${r.conns} shim-like connections (Session + WatchStatus each, ${CLIENT_PROCESSES} client processes) on one broker replica; connected in ${Math.round(r.connectMs)} ms`,
    '',
    '| | broker RSS (MiB) | broker CPU idle (ms per s) | status messages per s |',
    '|---|---|---|---|',
    `| 0 connections | ${f(r.base.rss)} | ${f(r.base.cpu)} | 0 |`,
    `| ${r.conns} connections | ${f(r.loaded.rss)} | ${f(r.loaded.cpu)} | ${f(r.statusPerSecond)} |`,
    '',
    `key_id change (admin rotate): every status stream of the first client process had it after ${Math.round(r.reachFirst)} ms, all ${r.conns} streams after ${Math.round(r.reachMax)} ms (from sending the rotate, which answered after ${Math.round(r.rotateMs)} ms; IPC included)`,
    `Wrap+Unwrap on every Session: before rotate ${r.before.ok} ok, ${r.before.errors} errors, ${r.before.wrong} wrong; after ${r.after.ok} ok, ${r.after.errors} errors, ${r.after.wrong} wrong${r.before.samples.concat(r.after.samples).length ? ` (${r.before.samples.concat(r.after.samples).join('; ')})` : ''}`,
    `MaxListenersExceededWarning in the broker log: ${r.maxListenersWarning ? 'YES' : 'no'}`,
  ].join('\n');
}

module.exports = { run, report };

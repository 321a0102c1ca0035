// HA fleet figures, real processes: 3 broker replicas, a redis-server, the AWS KMS emulator (own process, calls
// counted at its control endpoint), a shim over the replicas.
//  1. Restart storm: all replicas restarted (cold L1), N clients (separate channels spread over the replicas)
//     decrypt the same 20 seeds at once; KMS Decrypt calls and time, with a cold shared L2, a warm L2, and no Redis.
//  2. Takeover: SIGKILL the leader K times; time until another replica holds the lease, and the slowest Decrypt
//     the shim served meanwhile (a call is re-sent to another replica at once).
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const { brokerV1 } = require('@kekbroker/proto');
const { kmsV2Client } = require('./lib/kms-client');
const { ROOT, freePort, waitFor } = require('./lib/procs');

const SEEDS = 20;

function proc(cmd, args, cwd, log) {
  const fd = fs.openSync(path.join(cwd, log), 'a');
  return spawn(cmd, args, { cwd, stdio: ['ignore', fd, fd], env: { ...process.env, E2E_AWS_KEY: 'AKIDEXAMPLE', E2E_AWS_SECRET: 'x', AWS_EC2_METADATA_DISABLED: 'true' } });
}
const kill = (c, sig = 'SIGKILL') => new Promise((r) => (c.exitCode !== null || c.signalCode ? r() : (c.once('exit', r), c.kill(sig))));

async function startAll(dir) {
  const ports = { aws: await freePort(), gcp: await freePort(), azure: await freePort(), control: await freePort(), redis: await freePort() };
  const emu = proc(process.execPath, [path.join(ROOT, 'packages/emulators/dist/cli.js'), '--aws-port', ports.aws, '--gcp-port', ports.gcp, '--azure-port', ports.azure, '--control-port', ports.control, '--dir', dir].map(String), dir, 'emulators.log');
  const redis = proc('redis-server', ['--port', String(ports.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], dir, 'redis.log');
  await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.control}/calls/aws`)).ok, 30000);
  fs.writeFileSync(path.join(dir, 'admin.token'), 'bench-token');
  const replicas = [];
  for (let i = 0; i < 3; i++) replicas.push({ id: `b${i + 1}`, grpc: await freePort(), http: await freePort(), admin: await freePort(), child: undefined });
  return { ports, emu, redis, replicas };
}

function config(r, ports, withRedis) {
  return `grpc: { listen: "127.0.0.1:${r.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${r.http}" }
admin: { listen: "127.0.0.1:${r.admin}", tokenFile: ./admin.token }
providers:
  aws: { type: aws-kms, region: us-east-1, keyId: alias/kekbroker-dev, endpoint: "http://127.0.0.1:${ports.aws}", maxAttempts: 1, requestTimeoutMs: 10000, connectionTimeoutMs: 5000, callTimeoutMs: 12000, credentials: { source: env, accessKeyIdEnv: E2E_AWS_KEY, secretAccessKeyEnv: E2E_AWS_SECRET } }
keyrings:
  default: { providers: [aws] }
tenants:
  dev: { keyrings: [default] }
limits: { deadlineMs: 12000 }
${withRedis ? `redis: { nodes: ["127.0.0.1:${ports.redis}"], commandTimeoutMs: 3000 }\nha: { replicaId: ${r.id}, leaseTtlMs: 3000, renewEveryMs: 1000, flightLockMs: 5000 }` : ''}
log: { level: warn, audit: false }
`;
}

async function startReplica(dir, r, ports, withRedis) {
  fs.writeFileSync(path.join(dir, `${r.id}.yaml`), config(r, ports, withRedis));
  r.child = proc(process.execPath, [path.join(ROOT, 'services/broker/dist/main.js'), '--config', `${r.id}.yaml`], dir, `${r.id}.log`);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${r.http}/readyz`)).status === 200, 30000);
  if (withRedis) {
    await waitFor(async () => {
      const s = await (await fetch(`http://127.0.0.1:${r.admin}/v1/admin/status`, { headers: { authorization: 'Bearer bench-token' } })).json();
      return s.fleet.sealingKeys.every((k) => k.open);
    }, 30000);
  }
}

const decrypts = async (ports) => (await (await fetch(`http://127.0.0.1:${ports.control}/calls/aws`)).json()).Decrypt ?? 0;

function client(port) {
  const C = brokerV1().KekBroker;
  return new C(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}
const md = () => { const m = new grpc.Metadata(); m.set('x-kekbroker-tenant', 'dev'); return m; };
const call = (c, method, req) => new Promise((res, rej) => c[method](req, md(), { deadline: Date.now() + 15000 }, (e, r) => (e ? rej(e) : res(r))));

async function storm(replicas, envelopes, n) {
  const clients = Array.from({ length: n }, (_, i) => client(replicas[i % replicas.length].grpc));
  await Promise.all(clients.map((c) => new Promise((res, rej) => c.waitForReady(Date.now() + 10000, (e) => (e ? rej(e) : res())))));
  const t0 = performance.now();
  let wrong = 0;
  const settled = await Promise.allSettled(clients.flatMap((c) => envelopes.map(async (e) => {
    const r = await call(c, 'Unwrap', { keyring: 'default', ciphertext: e.ciphertext, key_id: e.key_id });
    if (!Buffer.from(r.plaintext).equals(e.seed)) wrong++;
  })));
  const ms = performance.now() - t0;
  for (const c of clients) c.close();
  if (wrong) throw new Error(`${wrong} wrong answers`);
  const failed = settled.filter((x) => x.status === 'rejected');
  return { ms, failed: failed.length, why: failed[0]?.reason?.details };
}

async function run({ rounds = 1 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-ha-'));
  const { ports, emu, redis, replicas } = await startAll(dir);
  const out = { storms: [], takeover: undefined };
  try {
    for (const r of replicas) await startReplica(dir, r, ports, true);
    const c = client(replicas[0].grpc);
    const envelopes = [];
    for (let i = 0; i < SEEDS; i++) {
      const seed = crypto.randomBytes(32);
      const w = await call(c, 'Wrap', { keyring: 'default', plaintext: seed });
      envelopes.push({ seed, ciphertext: w.ciphertext, key_id: w.key_id });
    }
    c.close();
    const restart = async (withRedis) => {
      for (const r of replicas) await kill(r.child);
      for (const r of replicas) await startReplica(dir, r, ports, withRedis);
    };
    for (const n of [10, 50]) {
      for (const mode of ['cold L2', 'warm L2', 'no Redis']) {
        await restart(mode !== 'no Redis');
        if (mode === 'cold L2') for (const k of spawnSync('redis-cli', ['-p', String(ports.redis), '--scan', '--pattern', 'kekbroker:{*}:l2'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) spawnSync('redis-cli', ['-p', String(ports.redis), 'del', k]);
        const before = await decrypts(ports);
        console.error(`  storm ${n} ${mode}...`);
        const { ms, failed, why } = await storm(replicas, envelopes, n);
        out.storms.push({ n, mode, kms: (await decrypts(ports)) - before, ms, failed, why });
        console.error(`  storm ${n} ${mode}: done`);
      }
    }
    // Takeover: replicas with Redis, a shim over all three, Decrypts in a loop while the leader is killed.
    await restart(true);
    const socket = path.join(dir, 'kms.sock');
    const shim = proc(process.execPath, [path.join(ROOT, 'services/kms-shim/dist/main.js'), '--socket', socket, ...replicas.flatMap((r) => ['--broker', `127.0.0.1:${r.grpc}`]), '--insecure-dev-tenant', 'dev', '--log-level', 'warn'], dir, 'shim.log');
    await waitFor(async () => fs.existsSync(socket));
    const k = kmsV2Client(socket, { waitForReady: true });
    const kcall = k.call;
    const enc = await kcall('Encrypt', { plaintext: envelopes[0].seed, uid: 'b' });
    let running = true;
    let maxMs = 0;
    let failed = 0;
    let okCalls = 0;
    const loop = (async () => {
      while (running) {
        const t0 = performance.now();
        try {
          const d = await kcall('Decrypt', { ciphertext: enc.ciphertext, key_id: enc.key_id, annotations: enc.annotations, uid: 'b' });
          if (!Buffer.from(d.plaintext).equals(envelopes[0].seed)) failed++;
          okCalls++;
        } catch {
          failed++;
        }
        maxMs = Math.max(maxMs, performance.now() - t0);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const leaderOf = async (skip) => {
      for (const r of replicas) {
        if (r === skip) continue;
        const s = await fetch(`http://127.0.0.1:${r.http}/readyz`, { signal: AbortSignal.timeout(300) }).then((x) => x.json()).catch(() => undefined);
        if (s?.leader) return r;
      }
      return undefined;
    };
    const takeovers = [];
    for (let i = 0; i < 10 * rounds; i++) {
      let leader;
      while (!(leader = await leaderOf())) await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      await kill(leader.child);
      while (!(await leaderOf(leader))) await new Promise((r) => setTimeout(r, 20));
      takeovers.push(performance.now() - t0);
      await startReplica(dir, leader, ports, true);
    }
    running = false;
    await loop;
    k.close();
    await kill(shim, 'SIGTERM');
    takeovers.sort((a, b) => a - b);
    out.takeover = { kills: takeovers.length, p50: takeovers[Math.floor(takeovers.length / 2)], max: takeovers.at(-1), decryptMaxMs: maxMs, failed, okCalls };
  } finally {
    for (const r of replicas) if (r.child) await kill(r.child);
    await kill(redis);
    await kill(emu);
  }
  return out;
}

function report(o) {
  const lines = ['| clients x seeds | shared L2 | KMS Decrypt calls | time to serve all | failed calls |', '|---|---|---|---|---|'];
  for (const s of o.storms) lines.push(`| ${s.n} x ${SEEDS} | ${s.mode} | ${s.kms} | ${Math.round(s.ms)} ms | ${s.failed}${s.why ? ` (${s.why.slice(0, 60)}…)` : ''} |`);
  const t = o.takeover;
  lines.push('', `Leader SIGKILL x${t.kills} (lease TTL 3 s): new leader p50 ${Math.round(t.p50)} ms, max ${Math.round(t.max)} ms; ` +
    `Decrypts through the shim meanwhile: ${t.okCalls} ok, ${t.failed} failed, slowest ${Math.round(t.decryptMaxMs)} ms.`);
  return lines.join('\n');
}

module.exports = { run, report, _internals: { startAll, startReplica, client, call, kill, decrypts } };

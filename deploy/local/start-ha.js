#!/usr/bin/env node
// `npm run start:ha`: an HA fleet on this machine to try failover by hand: a local redis-server, three broker
// replicas (shared local key, sealed L2 cache in Redis, leader lease) and one kms-shim over all three.
// Ctrl-C stops everything. Kill the leader (see the banner) and watch the shim carry on.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const ROOT = path.resolve(__dirname, '../..');
const REPLICAS = [
  { id: 'b1', grpc: 7443, http: 7480, admin: 7481 },
  { id: 'b2', grpc: 7444, http: 7482, admin: 7483 },
  { id: 'b3', grpc: 7445, http: 7484, admin: 7485 },
];
const HELP = `npm run start:ha [-- options]   3 broker replicas + redis-server + kms-shim, on loopback

Options:
  --socket PATH       shim socket (default ./run/kms.sock)
  --data DIR          configs, keystore, token, redis dir (default ./data-ha)
  --redis-port N      port of the local redis-server (default 6390)
  --no-build          do not run the build first
  -h, --help          show this help

Needs redis-server on PATH (bash scripts/ensure-redis.sh installs it).
Ports: brokers gRPC 7443-7445, health 7480/7482/7484, admin 7481/7483/7485.`;

function main() {
  const { values } = parseArgs({
    options: { socket: { type: 'string' }, data: { type: 'string' }, 'redis-port': { type: 'string' }, 'no-build': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) return console.log(HELP);
  const data = path.resolve(values.data ?? path.join(ROOT, 'data-ha'));
  const socket = path.resolve(values.socket ?? process.env.KEKBROKER_SHIM_SOCKET ?? path.join(ROOT, 'run/kms.sock'));
  const redisPort = Number(values['redis-port'] ?? 6390);
  if (spawnSync('redis-server', ['--version']).status !== 0) return fail('redis-server not found: run `bash scripts/ensure-redis.sh` (or install Redis >= 6)');
  if (!values['no-build']) {
    const b = spawnSync(process.execPath, [require.resolve('turbo/bin/turbo'), 'run', 'build', '--output-logs=errors-only'], { cwd: ROOT, stdio: 'inherit' });
    if (b.status !== 0) return fail('build failed; see the errors above');
  }
  fs.mkdirSync(path.join(data, 'redis'), { recursive: true, mode: 0o700 });
  const tokenFile = path.join(data, 'admin.token');
  if (!fs.existsSync(tokenFile)) fs.writeFileSync(tokenFile, crypto.randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
  for (const r of REPLICAS) {
    const f = path.join(data, `${r.id}.yaml`);
    if (!fs.existsSync(f)) fs.writeFileSync(f, config(r, redisPort), { mode: 0o600 });
  }

  const children = [];
  let stopping = false;
  const stopAll = (code) => {
    if (stopping) return;
    stopping = true;
    for (const c of [...children].reverse()) if (c.exitCode === null) c.kill('SIGTERM');
    setTimeout(() => process.exit(code), 8000).unref();
    Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r))))).then(() => process.exit(code));
  };
  process.on('SIGINT', () => stopAll(0));
  process.on('SIGTERM', () => stopAll(0));
  const run = (name, cmd, args, keepGoing) => {
    const c = spawn(cmd, args, { cwd: data, stdio: ['ignore', 'inherit', 'inherit'] });
    c.once('exit', (code, sig) => {
      if (stopping) return;
      console.error(`kekbroker-ha: ${name} exited (${sig ?? code})${keepGoing ? ' -- the others carry on; restart it with the command in the banner' : '; stopping.'}`);
      if (!keepGoing) stopAll(1);
    });
    children.push(c);
    return c;
  };

  run('redis-server', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', path.join(data, 'redis')], false);
  (async () => {
    await waitHttp(null, 50, async () => spawnSync('redis-cli', ['-p', String(redisPort), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG', 'redis-server');
    // The first replica creates the local keystore; the others then read it.
    for (const r of REPLICAS) {
      run(`broker ${r.id}`, process.execPath, [path.join(ROOT, 'services/broker/dist/main.js'), '--config', path.join(data, `${r.id}.yaml`)], true);
      await waitHttp(`http://127.0.0.1:${r.http}/readyz`, 100, null, `broker ${r.id}`);
    }
    run('kms-shim', process.execPath, [path.join(ROOT, 'services/kms-shim/dist/main.js'), '--socket', socket, ...REPLICAS.flatMap((r) => ['--broker', `127.0.0.1:${r.grpc}`]), '--insecure-dev-tenant', 'dev'], false);
    await waitHttp(null, 100, async () => fs.existsSync(socket), 'shim socket');
    banner(socket, tokenFile, data);
  })().catch((e) => {
    console.error(`kekbroker-ha: ${e.message}`);
    stopAll(1);
  });
}

function config(r, redisPort) {
  return `# kekbroker HA dev replica ${r.id}, written by \`npm run start:ha\` (docs/ha.md, docs/configuration.md).
grpc: { listen: "127.0.0.1:${r.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${r.http}" }
admin: { listen: "127.0.0.1:${r.admin}", tokenFile: ./admin.token }
providers:
  local: { type: local, keystore: ./local-keystore.json }
keyrings:
  default: { providers: [local] }
tenants:
  dev: { keyrings: [default] }
cache: { maxEntries: 100000, maxBytes: 268435456, ttlSeconds: 3600, maxStaleSeconds: 300 }
redis: { mode: standalone, nodes: ["127.0.0.1:${redisPort}"] }
ha: { replicaId: ${r.id}, leaseTtlMs: 5000, renewEveryMs: 1500 }
log: { level: info, audit: false }
`;
}

async function waitHttp(url, tries, probe, what) {
  for (let i = 0; i < tries; i++) {
    const ok = probe ? await probe() : (await fetch(url).catch(() => undefined))?.status === 200;
    if (ok) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`${what} not ready; check the log above (port taken?)`);
}

function banner(socket, tokenFile, data) {
  console.error(`
kekbroker HA fleet is running (3 replicas + redis + shim).  Ctrl-C stops everything.
  KMS v2 socket : ${socket}
  who leads     : for p in 7480 7482 7484; do curl -s 127.0.0.1:$p/readyz; echo; done
  admin status  : curl -s -H "Authorization: Bearer $(cat ${tokenFile})" http://127.0.0.1:7481/v1/admin/status
  step down     : curl -s -XPOST -H "Authorization: Bearer $(cat ${tokenFile})" http://127.0.0.1:7481/v1/admin/leader/step-down
  kill a replica: kill -9 <pid of the leader>   (restart: node services/broker/dist/main.js --config ${path.join(data, 'b1.yaml')})
  shim metrics  : add --metrics-listen to the shim for kekbroker_shim_broker_live / _retries`);
}

function fail(msg) {
  console.error(`kekbroker-ha: ${msg}`);
  process.exitCode = 1;
}

main();

// A real broker + shim stack on loopback for the benchmarks that need cloud emulators (failover, cold path).
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { kmsV2Client } = require('./kms-client');
const { ROOT, freePort, nodeFlags, waitFor } = require('./procs');

process.env.BENCH_AWS_KEY = 'AKIDEXAMPLE';
process.env.BENCH_AWS_SECRET = 'not-a-secret';
process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.METADATA_SERVER_DETECTION = 'none';

function awsCfg(emu, keyArn) {
  return { type: 'aws-kms', region: emu.region, keyId: keyArn, endpoint: emu.endpoint, credentials: { source: 'env', accessKeyIdEnv: 'BENCH_AWS_KEY', secretAccessKeyEnv: 'BENCH_AWS_SECRET' } };
}

async function startStack(providers, keyring, extra = '') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-fo-'));
  const ports = { grpc: await freePort(), http: await freePort(), admin: await freePort() };
  fs.writeFileSync(path.join(dir, 'admin.token'), 'bench-token');
  fs.writeFileSync(path.join(dir, 'broker.yaml'), `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
state: { dir: ./state }
providers:
${Object.entries(providers).map(([id, c]) => `  ${id}: ${JSON.stringify(c)}`).join('\n')}
keyrings:
  default: ${JSON.stringify(keyring)}
tenants:
  dev: { keyrings: [default] }
log: { level: warn, audit: false }
${extra}`);
  const log = fs.openSync(path.join(dir, 'stack.log'), 'a');
  const broker = spawn(process.execPath, [...nodeFlags('broker.log'), path.join(ROOT, 'services/broker/dist/main.js'), '--config', 'broker.yaml'], { cwd: dir, stdio: ['ignore', log, log] });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.http}/readyz`)).status === 200);
  const socket = path.join(dir, 'kms.sock');
  const shim = spawn(process.execPath, [...nodeFlags('shim.log'), path.join(ROOT, 'services/kms-shim/dist/main.js'), '--socket', socket, '--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev', '--log-level', 'warn'], { cwd: dir, stdio: ['ignore', log, log] });
  await waitFor(async () => fs.existsSync(socket));
  const client = kmsV2Client(socket, { waitForReady: true });
  const call = client.call;
  const status = async () => (await (await fetch(`http://127.0.0.1:${ports.admin}/v1/admin/status`, { headers: { authorization: 'Bearer bench-token' } })).json()).keyrings[0];
  const kill = (p) => new Promise((r) => (p.exitCode !== null ? r() : (p.once('exit', r), p.kill('SIGTERM'))));
  await waitFor(async () => (await call('Status', {})).healthz === 'ok');
  return { call, status, ports, socket, pids: { broker: broker.pid, shim: shim.pid }, stop: async () => { client.close(); await kill(shim); await kill(broker); } };
}

module.exports = { awsCfg, startStack };

// Start and stop the real broker and shim processes for benchmarks (same entry points as production).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../..');

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * BENCH_CPU_PROF=<dir>: every server process this file starts writes a V8 CPU profile there when it exits
 * (`node --cpu-prof`; open it in Chrome DevTools or summarise it with bench/lib/profile-top.js).
 */
function nodeFlags(logName) {
  const dir = process.env.BENCH_CPU_PROF;
  if (!dir) return [];
  fs.mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', '--cpu-prof-dir', path.resolve(dir), '--cpu-prof-name', `${logName.replace(/\.log$/, '')}-${Date.now()}.cpuprofile`];
}

function start(main, args, cwd, logName) {
  const log = fs.openSync(path.join(cwd, logName), 'a');
  return spawn(process.execPath, [...nodeFlags(logName), main, ...args], { cwd, stdio: ['ignore', log, log] });
}

async function waitFor(check, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timed out waiting for a benchmark process');
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
}

/** One broker (local provider, keyring `default`, tenant `dev`), ready; `extraConfig`: more top-level YAML. */
async function startBroker(extraConfig = '') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-'));
  const grpc = await freePort();
  const http = await freePort();
  const admin = await freePort();
  fs.writeFileSync(path.join(dir, 'admin.token'), 'bench-token');
  fs.writeFileSync(path.join(dir, 'broker.yaml'), `grpc: { listen: "127.0.0.1:${grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${http}" }
admin: { listen: "127.0.0.1:${admin}", tokenFile: ./admin.token }
providers:
  local: { type: local, keystore: ./keystore.json }
${extraConfig}
keyrings:
  default: { providers: [local] }
tenants:
  dev: { keyrings: [default] }
log: { level: warn, audit: false }
`);
  const broker = start(path.join(ROOT, 'services/broker/dist/main.js'), ['--config', 'broker.yaml'], dir, 'broker.log');
  await waitFor(async () => (await fetch(`http://127.0.0.1:${http}/readyz`)).status === 200);
  return { dir, ports: { grpc, http, admin }, child: broker, stop: () => stop(broker) };
}

/** A broker and a kms-shim in front of it (the production pair). */
async function startKekbroker(extraConfig = '') {
  const { dir, ports, child: broker } = await startBroker(extraConfig);
  const { grpc, http, admin } = ports;
  const socket = path.join(dir, 'kms.sock');
  const shim = start(path.join(ROOT, 'services/kms-shim/dist/main.js'), ['--socket', socket, '--broker', `127.0.0.1:${grpc}`, '--insecure-dev-tenant', 'dev', '--log-level', 'warn'], dir, 'shim.log');
  await waitFor(async () => fs.existsSync(socket));
  return { dir, socket, ports: { grpc, http, admin }, pids: { broker: broker.pid, shim: shim.pid }, stop: async () => { await stop(shim); await stop(broker); } };
}

async function startEcho() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-echo-'));
  const port = await freePort();
  const socket = path.join(dir, 'echo.sock');
  const broker = start(path.join(__dirname, '../echo/echo-broker.js'), [String(port)], dir, 'echo-broker.log');
  await waitFor(() => new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); }).on('error', () => r(false)); }));
  const shim = start(path.join(__dirname, '../echo/echo-shim.js'), [socket, String(port)], dir, 'echo-shim.log');
  await waitFor(async () => fs.existsSync(socket));
  return { socket, pids: { broker: broker.pid, shim: shim.pid }, stop: async () => { await stop(shim); await stop(broker); } };
}

/** A one-process server from bench/echo/ on a unix socket in a temp dir of its own; `argsFor(socket)`: its argv. */
async function startSocketServer(name, script, argsFor) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kekbroker-bench-${name}-`));
  const socket = path.join(dir, `${name}.sock`);
  const child = start(path.join(__dirname, '../echo', script), argsFor(socket), dir, `${name}.log`);
  await waitFor(async () => fs.existsSync(socket));
  return { socket, pid: child.pid, stop: () => stop(child) };
}

/** The bare single-cloud plugin (bench/echo/aws-plugin.js) over the AWS provider config `cfg`. */
function startAwsPlugin(cfg) {
  process.env.BENCH_AWS_CFG = JSON.stringify(cfg);
  return startSocketServer('aws-plugin', 'aws-plugin.js', (socket) => [socket]);
}

/** A one-process KMS v2 server answering Decrypt itself (bench/echo/local-kms-server.js): `kind` grpc-js or h2. */
function startLocalKmsServer(kind) {
  return startSocketServer(kind, 'local-kms-server.js', (socket) => [kind, socket]);
}

/** CPU seconds (user+system) a process has used so far, from /proc. */
function cpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

module.exports = { ROOT, nodeFlags, freePort, startBroker, startKekbroker, startEcho, startAwsPlugin, startLocalKmsServer, cpuSeconds, waitFor };

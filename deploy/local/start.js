#!/usr/bin/env node
// `npm start`: build if needed, then run a broker and a kms-shim as two processes on the embedded default
// (local software key under ./data, in-memory cache, plaintext gRPC on loopback). Ctrl-C stops both.
// Ports come from <data>/kekbroker.yaml; the first start picks free ones and writes them there.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { parseArgs } = require('node:util');

const ROOT = path.resolve(__dirname, '../..');
const HELP = `npm start [-- options]   run kekbroker locally (broker + kms-shim, local key, in-memory cache)

Options:
  --socket PATH     shim socket for kube-apiserver (env KEKBROKER_SHIM_SOCKET; default ./run/kms.sock)
  --data DIR        where the config, keystore and admin token live (default ./data)
  --no-build        do not run the build first
  -h, --help        show this help

Files (created on first start, kept afterwards):
  <data>/kekbroker.yaml      broker config (edit it; see docs/configuration.md)
  <data>/local-keystore.json the local KEK (0600) -- back it up: losing it loses every Secret it sealed
  <data>/admin.token         bearer token for the admin API (0600)`;

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: { socket: { type: 'string' }, data: { type: 'string' }, 'no-build': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (e) {
    fail(`${e.message.replace(/\. To specify a positional.*$/s, '')}\nRun \`npm start -- --help\` for usage.`);
    process.exitCode = 2;
    return;
  }
  if (values.help) return console.log(HELP);
  const data = path.resolve(values.data ?? path.join(ROOT, 'data'));
  const socket = path.resolve(values.socket ?? process.env.KEKBROKER_SHIM_SOCKET ?? path.join(ROOT, 'run/kms.sock'));

  if (!values['no-build']) {
    console.error('kekbroker: building (turbo caches, so this is quick after the first time)...');
    const b = spawnSync(process.execPath, [require.resolve('turbo/bin/turbo'), 'run', 'build', '--output-logs=errors-only'], { cwd: ROOT, stdio: 'inherit' });
    if (b.status !== 0) return fail('build failed; see the errors above');
  }

  fs.mkdirSync(data, { recursive: true, mode: 0o700 });
  const config = path.join(data, 'kekbroker.yaml');
  if (!fs.existsSync(config)) fs.writeFileSync(config, devConfig(await freePort(), await freePort(), await freePort()), { mode: 0o600 });
  const listen = readListen(config);
  if (!listen) return;
  for (const [key, address] of Object.entries(listen)) {
    const err = await bindable(address);
    if (err) {
      return fail(`${key}.listen ${address} in ${config} cannot be bound (${err === 'EADDRINUSE' ? 'in use: is another `npm start` or `npm run emulators` running?' : err}); stop the other process or edit the address`);
    }
  }
  if (await answers(socket)) return fail(`shim socket ${socket} is in use (another \`npm start\`?); stop it, or pass --socket PATH`);
  const tokenFile = path.join(data, 'admin.token');
  if (!fs.existsSync(tokenFile)) fs.writeFileSync(tokenFile, crypto.randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });

  const children = [];
  let stopping = false;
  const stopAll = (code) => {
    if (stopping) return;
    stopping = true;
    for (const c of [...children].reverse()) if (c.exitCode === null) c.kill('SIGTERM');
    const t = setTimeout(() => process.exit(code), 8000);
    t.unref();
    Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r))))).then(() => process.exit(code));
  };
  process.on('SIGINT', () => stopAll(0));
  process.on('SIGTERM', () => stopAll(0));

  const run = (name, main, args) => {
    const c = spawn(process.execPath, [main, ...args], { cwd: data, stdio: ['ignore', 'inherit', 'inherit'] });
    c.once('exit', (code, sig) => {
      if (!stopping) {
        console.error(`kekbroker: ${name} exited (${sig ?? code}); stopping.`);
        stopAll(1);
      }
    });
    children.push(c);
    return c;
  };

  run('broker', path.join(ROOT, 'services/broker/dist/main.js'), ['--config', config]);
  const httpUrl = `http://${listen.http}`;
  waitReady(`${httpUrl}/readyz`, 20000)
    .then(() => {
      run('kms-shim', path.join(ROOT, 'services/kms-shim/dist/main.js'), ['--socket', socket, '--broker', listen.grpc, '--insecure-dev-tenant', 'dev']);
      return waitSocket(socket, 10000);
    })
    .then(() => !stopping && banner(socket, tokenFile, httpUrl, `http://${listen.admin}`))
    .catch((e) => {
      console.error(`kekbroker: ${e.message}`);
      stopAll(1);
    });
}

function devConfig(grpcPort, httpPort, adminPort) {
  return `# kekbroker dev config written by \`npm start\` (see docs/configuration.md for every key).
# Plaintext gRPC on loopback only; production uses grpc.tls with a client CA.
# The ports were free when this file was written; \`npm start\` reads them from here.
grpc: { listen: "127.0.0.1:${grpcPort}", insecureLoopback: true }
http: { listen: "127.0.0.1:${httpPort}" }          # /healthz /readyz /metrics
admin: { listen: "127.0.0.1:${adminPort}", tokenFile: ./admin.token }
providers:
  local: { type: local, keystore: ./local-keystore.json }
keyrings:
  default: { providers: [local] }
tenants:
  dev: { keyrings: [default] }
cache: { maxEntries: 100000, ttlSeconds: 3600 }
log: { level: info, audit: true }
`;
}

/** grpc/http/admin listen addresses from the config (the broker's defaults where a key is absent). */
function readListen(config) {
  let doc;
  try {
    doc = require('yaml').parse(fs.readFileSync(config, 'utf8')) ?? {};
  } catch (e) {
    fail(`cannot read ${config}: ${e.message}`);
    return undefined;
  }
  const get = (section, def) => (doc[section] && typeof doc[section].listen === 'string' ? doc[section].listen : def);
  return { grpc: get('grpc', '127.0.0.1:7443'), http: get('http', '127.0.0.1:7480'), admin: get('admin', '127.0.0.1:7481') };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** undefined when host:port can be bound now, else the error code. */
function bindable(address) {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', (e) => resolve(e.code || e.message));
    s.listen({ host, port: Number(address.slice(i + 1)), exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

function answers(socketPath) {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

async function waitReady(url, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const r = await fetch(url).catch(() => undefined);
    if (r && r.status === 200) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`broker not ready after ${ms / 1000} s (${url}); check the log above`);
}

async function waitSocket(file, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await answers(file)) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`shim socket ${file} did not answer after ${ms / 1000} s`);
}

function banner(socket, tokenFile, httpUrl, adminUrl) {
  console.error(`
kekbroker is running.  Ctrl-C stops both processes.
  KMS v2 socket : ${socket}
  health/metrics: ${httpUrl}/readyz  ${httpUrl}/metrics
  admin API     : curl -H "Authorization: Bearer $(cat ${tokenFile})" ${adminUrl}/v1/admin/status

Give kube-apiserver this EncryptionConfiguration (--encryption-provider-config=<file>):
---
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms:
          apiVersion: v2
          name: kekbroker
          endpoint: unix://${socket}
          timeout: 3s
      - identity: {}
---`);
}

function fail(msg) {
  console.error(`kekbroker: ${msg}`);
  process.exitCode = 1;
}

main().catch((e) => {
  console.error(`kekbroker: ${e.message}`);
  process.exit(1);
});

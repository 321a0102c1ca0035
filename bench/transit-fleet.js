// Transit KMS cost with 2 broker replicas sharing data keys through Redis (real processes: the GCP KMS
// emulator in its own process, calls counted at its control endpoint; a redis-server; 2 brokers). 10,000
// single encrypts spread over both replicas (16 workers, alternating replicas), then every ciphertext is
// decrypted on the OTHER replica and compared with its plaintext. Reports KMS Encrypt (wrap) and Decrypt
// (unwrap) calls for the whole 10,000, beside the same run without Redis (each replica its own data key).
'use strict';
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ROOT, freePort, waitFor } = require('./lib/procs');

const TOKEN = 'bench-transit-fleet-token';
const ENCRYPTS = 10_000;

function proc(cmd, args, cwd, log) {
  const fd = fs.openSync(path.join(cwd, log), 'a');
  return spawn(cmd, args, { cwd, stdio: ['ignore', fd, fd], env: { ...process.env, METADATA_SERVER_DETECTION: 'none' } });
}
const kill = (c) => new Promise((r) => (c.exitCode !== null || c.signalCode ? r() : (c.once('exit', r), c.kill('SIGKILL'))));

function config(r, ports, withRedis) {
  const sha = crypto.createHash('sha256').update(TOKEN).digest('hex');
  return `grpc: { listen: "127.0.0.1:${r.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${r.http}" }
admin: { listen: "127.0.0.1:${r.admin}" }
providers:
  gcp: { type: gcp-kms, keyName: "projects/kekbroker-dev/locations/local/keyRings/kekbroker/cryptoKeys/kek", endpoint: "127.0.0.1:${ports.gcp}", insecureLoopback: true }
keyrings:
  default: { providers: [gcp] }
tenants:
  dev: { keyrings: [default] }
${withRedis ? `redis: { nodes: ["127.0.0.1:${ports.redis}"] }\nha: { replicaId: ${r.id} }` : ''}
transit:
  enabled: true
  listen: "127.0.0.1:${r.transit}"
  keys: { app: { keyring: default } }
  identities: [{ tokenSha256: "${sha}", tenant: dev }]
log: { level: warn, audit: false }
`;
}

async function post(r, p, body) {
  const res = await fetch(`http://127.0.0.1:${r.transit}/v1/transit/${p}`, { method: 'POST', headers: { 'x-vault-token': TOKEN }, body: JSON.stringify(body) });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(json)}`);
  return json.data;
}

async function calls(ports) {
  const c = await (await fetch(`http://127.0.0.1:${ports.control}/calls/gcp`)).json();
  return { wraps: c.Encrypt ?? 0, unwraps: c.Decrypt ?? 0 };
}

async function scenario(withRedis) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-bench-transit-fleet-'));
  const ports = { aws: await freePort(), gcp: await freePort(), azure: await freePort(), control: await freePort(), redis: await freePort() };
  const emu = proc(process.execPath, [path.join(ROOT, 'packages/emulators/dist/cli.js'), '--aws-port', ports.aws, '--gcp-port', ports.gcp, '--azure-port', ports.azure, '--control-port', ports.control, '--dir', dir].map(String), dir, 'emulators.log');
  const redis = withRedis ? proc('redis-server', ['--port', String(ports.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], dir, 'redis.log') : undefined;
  const replicas = [];
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.control}/calls/gcp`)).ok, 30000);
    for (const id of ['t1', 't2']) {
      const r = { id, grpc: await freePort(), http: await freePort(), admin: await freePort(), transit: await freePort() };
      fs.writeFileSync(path.join(dir, `${id}.yaml`), config(r, ports, withRedis));
      r.child = proc(process.execPath, [path.join(ROOT, 'services/broker/dist/main.js'), '--config', `${id}.yaml`], dir, `${id}.log`);
      replicas.push(r);
      await waitFor(async () => (await fetch(`http://127.0.0.1:${r.http}/readyz`)).status === 200, 30000);
    }
    if (withRedis) {
      await waitFor(async () => {
        for (const r of replicas) if (!/kekbroker_transit_data_keys_shared\{keyring="default"[^}]*\} 1/.test(await (await fetch(`http://127.0.0.1:${r.http}/metrics`)).text())) return false;
        return true;
      }, 30000);
    }
    const before = await calls(ports);
    const sealed = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < ENCRYPTS) {
        const i = next++;
        const plaintext = crypto.randomBytes(32).toString('base64');
        sealed.push({ i, plaintext, ciphertext: (await post(replicas[i % 2], 'encrypt/app', { plaintext })).ciphertext });
      }
    }));
    const seconds = (performance.now() - t0) / 1000;
    const afterEncrypt = await calls(ports);
    for (let k = 0; k < sealed.length; k += 100) {
      const chunk = sealed.slice(k, k + 100);
      // Each ciphertext on the replica that did NOT make it (the chunk is mixed: decrypt per replica).
      for (const side of [0, 1]) {
        const mine = chunk.filter((s) => (s.i + 1) % 2 === side);
        if (!mine.length) continue;
        const r = await post(replicas[side], 'decrypt/app', { batch_input: mine.map((s) => ({ ciphertext: s.ciphertext })) });
        r.batch_results.forEach((x, j) => { if (x.plaintext !== mine[j].plaintext) throw new Error('wrong answer: decrypt on the other replica'); });
      }
    }
    const afterDecrypt = await calls(ports);
    // The data-key envelope of each ciphertext (format: 01 | len(2) | envelope | nonce | sealed).
    const envelopeOf = (ct) => { const body = Buffer.from(ct.split(':')[2], 'base64'); return body.subarray(3, 3 + body.readUInt16BE(1)).toString('base64'); };
    const envelopes = new Set(sealed.map((s) => envelopeOf(s.ciphertext)));
    return { withRedis, seconds, wraps: afterEncrypt.wraps - before.wraps, unwraps: afterDecrypt.unwraps - afterEncrypt.unwraps, dataKeys: envelopes.size, verified: sealed.length };
  } finally {
    for (const r of replicas) await kill(r.child);
    if (redis) await kill(redis);
    await kill(emu);
  }
}

async function run() {
  return [await scenario(true), await scenario(false)];
}

function report(rows) {
  const lines = ['', `Transit with 2 replicas: KMS calls (GCP emulator) for ${ENCRYPTS.toLocaleString('en')} single encrypts spread over both, then each ciphertext decrypted on the other replica`,
    '| data keys | KMS wraps (Encrypt) | KMS unwraps to decrypt on the other replica | distinct data keys used | answers verified |', '|---|---:|---:|---:|---:|'];
  for (const r of rows) lines.push(`| ${r.withRedis ? 'shared through Redis' : 'per replica (no Redis)'} | ${r.wraps} | ${r.unwraps} | ${r.dataKeys} | ${r.verified} |`);
  return lines.join('\n');
}

module.exports = { run, report };

if (require.main === module) {
  run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });
}

// The kube-apiserver-like load generator (bench/go/kms-load): grpc-go, one connection, unary Decrypts with
// a 3 s deadline. Built once per `npm run bench` with Debian's Go packages (scripts/ensure-go.sh installs
// them when missing). `goMeasure` has measure()'s result shape, so benchmarks can use either client.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { recordWrong } = require('./measure');

const ROOT = path.resolve(__dirname, '../..');
let binary;

function buildGoClient() {
  if (binary) return binary;
  const ensure = spawnSync('bash', [path.join(ROOT, 'scripts/ensure-go.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (ensure.status !== 0) throw new Error('the Go load generator needs Go (scripts/ensure-go.sh failed, see above); or set BENCH_KMS_CLIENT=grpc-js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kekbroker-go-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'kms-load');
  const env = { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOCACHE: path.join(dir, 'cache'), GOFLAGS: '' };
  const b = spawnSync('go', ['build', '-o', out, '.'], { cwd: path.join(ROOT, 'bench/go/kms-load'), env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (b.status !== 0) throw new Error('go build of bench/go/kms-load failed (see above)');
  binary = out;
  return out;
}

/**
 * One closed-loop round of Decrypts from the Go client. `cases`: [{ ciphertext, key_id, annotations, expected }]
 * (Buffers). Wrong answers are recorded like measure()'s.
 */
async function goMeasure(socket, cases, { seconds, concurrency, warmupSeconds = 1 }) {
  const file = path.join(os.tmpdir(), `kekbroker-go-cases-${process.pid}.json`);
  fs.writeFileSync(file, JSON.stringify(cases.map((c) => ({
    ciphertext: c.ciphertext.toString('base64'),
    keyId: c.key_id,
    annotations: Object.fromEntries(Object.entries(c.annotations ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    expected: c.expected.toString('base64'),
  }))));
  const args = ['-socket', socket, '-cases', file, '-concurrency', String(concurrency), '-seconds', String(seconds), '-warmup', String(warmupSeconds)];
  // One P: kube-apiserver has cores of its own on a control-plane node; here the load generator shares 2 vCPUs
  // with the processes it measures, and the Go scheduler's idle Ps spin looking for work, taking CPU from them
  // (measured: shim CPU per call 533 vs 275 µs at c=16 with GOMAXPROCS=2 vs 1). BENCH_GO_MAXPROCS overrides.
  const env = { ...process.env, GOMAXPROCS: process.env.BENCH_GO_MAXPROCS || '1' };
  const child = spawn(buildGoClient(), args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const code = await new Promise((resolve) => child.on('close', resolve));
  fs.rmSync(file, { force: true });
  if (code !== 0) throw new Error(`the Go load generator exited ${code}`);
  const r = JSON.parse(out.trim().split('\n').pop());
  if (r.wrong > 0) recordWrong(r.wrong, r.wrongSample);
  return r;
}

module.exports = { buildGoClient, goMeasure };

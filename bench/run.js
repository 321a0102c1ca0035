#!/usr/bin/env node
// `npm run bench`: builds, then runs every benchmark and prints its figures (markdown tables).
//   npm run bench                   all benchmarks
//   npm run bench -- kms-v2         only those whose name contains "kms-v2"
//   npm run bench -- --quick        shorter rounds (for a smoke run)
'use strict';
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log('npm run bench [-- NAME...] [--quick]\n  NAME: kms-v2-decrypt, provider-cold-unwrap, cold-decrypt-shim, failover, transit, transit-fleet, l1-rss, ha-fleet, l2-decrypt, fleet-scale, idle, server-floor\n  --quick: 1 round of 2 s instead of 3 rounds of 5 s\nEnvironment:\n  BENCH_KMS_CLIENT=go|grpc-js|h2   KMS v2 load generator (default go: grpc-go, as kube-apiserver; needs Go, see scripts/ensure-go.sh)\n  BENCH_GO_MAXPROCS=N              GOMAXPROCS of the Go load generator (default 1)\n  BENCH_CPU_PROF=DIR               V8 CPU profiles of every broker and shim process');
  process.exit(0);
}
const quick = args.includes('--quick');
const names = args.filter((a) => !a.startsWith('--'));
const BENCHES = ['kms-v2-decrypt', 'provider-cold-unwrap', 'cold-decrypt-shim', 'failover', 'transit', 'transit-fleet', 'l1-rss', 'ha-fleet', 'l2-decrypt', 'fleet-scale', 'idle', 'server-floor'];

async function main() {
  const b = spawnSync(process.execPath, [require.resolve('turbo/bin/turbo'), 'run', 'build', '--output-logs=errors-only'], { cwd: ROOT, stdio: 'inherit' });
  if (b.status !== 0) process.exit(1);
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const name of BENCHES) {
    if (names.length && !names.some((n) => name.includes(n))) continue;
    let mod;
    try {
      mod = require(`./${name}`);
    } catch (e) {
      if (e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(name)) continue;
      throw e;
    }
    console.log(`\n## ${name}`);
    const opts = quick ? { seconds: 2, rounds: 1 } : {};
    console.log(mod.report(await mod.run(opts)));
  }
}

function failOnWrongAnswers() {
  const { total, samples } = require('./lib/measure').wrongAnswers();
  if (total === 0) return console.log('\nwrong answers: 0 (every answer compared with what it must be)');
  console.error(`\n!!! ${total} WRONG ANSWERS: the figures above are invalid. Samples: ${JSON.stringify(samples)}`);
  process.exitCode = 2;
}

main().then(failOnWrongAnswers, (e) => {
  console.error(e);
  process.exitCode = 1;
});

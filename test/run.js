#!/usr/bin/env node
// `npm test`: build, typecheck and lint every workspace (turbo), then run every compiled *.test.js of
// every workspace in ONE node:test run, so the output ends with a single summary. Files run one at a
// time: the cross-process tests start real brokers, shims and emulators on a 2-core box.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const turbo = require.resolve('turbo/bin/turbo');

function step(title, args) {
  console.log(`\n== ${title}`);
  const r = spawnSync(process.execPath, [turbo, ...args, '--output-logs=errors-only'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) {
    console.log(`0 passed, 1 failed: ${title} failed`);
    process.exit(1);
  }
}

function testFiles(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...testFiles(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// Tools the suite needs besides Node.js (redis-server for the HA tests, promtool, chromium): installed from
// Debian's packages when missing and we are root, so `npm ci && npm test` is the whole set-up on a fresh machine.
for (const script of ['scripts/ensure-redis.sh', '.ci/setup']) {
  console.log(`\n== tools: ${script}`);
  const t = spawnSync('bash', [path.join(ROOT, script)], { cwd: ROOT, stdio: 'inherit' });
  if (t.status !== 0) {
    console.log(`0 passed, 1 failed: ${script} could not provide a tool the tests need (see above)`);
    process.exit(1);
  }
}

step('build', ['run', 'build']);
if (!process.argv.includes('--no-lint')) step('typecheck + lint', ['run', 'typecheck', 'lint']);

const workspaces = [
  ...fs.readdirSync(path.join(ROOT, 'packages')).map((d) => path.join(ROOT, 'packages', d)),
  ...fs.readdirSync(path.join(ROOT, 'services')).map((d) => path.join(ROOT, 'services', d)),
  path.join(ROOT, 'test'),
];
const files = workspaces.flatMap((w) => testFiles(path.join(w, 'dist'))).sort();
const filter = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const selected = filter.length ? files.filter((f) => filter.some((x) => f.includes(x))) : files;
console.log(`\n== tests: ${selected.length} files`);
const tap = path.join(require('node:os').tmpdir(), `kekbroker-test-${process.pid}.tap`);
const r = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-timeout=300000', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...selected],
  { cwd: ROOT, stdio: 'inherit' },
);
const text = fs.existsSync(tap) ? fs.readFileSync(tap, 'utf8') : '';
const count = (k) => Number((new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text) ?? [])[1] ?? 0);
const passed = count('pass');
const failed = count('fail') + count('cancelled');
fs.rmSync(tap, { force: true });
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(r.status === 0 && failed === 0 && passed > 0 ? 0 : 1);

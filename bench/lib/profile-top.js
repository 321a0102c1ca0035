#!/usr/bin/env node
// Summarise a V8 .cpuprofile (from `node --cpu-prof`, e.g. BENCH_CPU_PROF=dir npm run bench -- kms-v2):
// self time per function and per package/file, as shares of busy (non-idle) time.
//   node bench/lib/profile-top.js FILE.cpuprofile [N]
'use strict';
const fs = require('node:fs');

const [file, n = '25'] = process.argv.slice(2);
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((x) => [x.id, x]));
const self = new Map();
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (dt[i] ?? 0));
const fnTime = new Map();
const fileTime = new Map();
let total = 0;
let idle = 0;
for (const [id, t] of self) {
  const cf = byId.get(id).callFrame;
  total += t;
  if (cf.functionName === '(idle)') { idle += t; continue; }
  const where = cf.url.replace(/^.*node_modules\//, '').replace(/^.*\/(services|packages)\//, '$1/').replace(/^file:\/\//, '') || '(native)';
  const key = `${cf.functionName || '(anonymous)'}  ${where}:${cf.lineNumber + 1}`;
  fnTime.set(key, (fnTime.get(key) ?? 0) + t);
  const pkg = where.startsWith('node:') ? where : where.split('/').slice(0, where.startsWith('@') ? 2 : where.startsWith('services') || where.startsWith('packages') ? 2 : 1).join('/');
  fileTime.set(pkg, (fileTime.get(pkg) ?? 0) + t);
}
const busy = total - idle;
const pc = (t) => `${((100 * t) / busy).toFixed(1).padStart(5)}%`;
console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled, idle ${((100 * idle) / total).toFixed(0)}%; shares of busy time`);
console.log('\nby package / file:');
for (const [k, t] of [...fileTime].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${pc(t)}  ${k}`);
console.log('\nby function (self):');
for (const [k, t] of [...fnTime].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) console.log(`${pc(t)}  ${k}`);

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { coreLimits } from './core-dumps';

test('a process started with core dumps allowed turns them off for itself (soft and hard)', (t) => {
  const limits = coreLimits();
  if (!limits) return t.skip('no /proc/self/limits on this platform');
  if (limits.hard === '0') return t.skip('the hard core limit is already 0 here: a child cannot raise its soft limit to prove the change');
  const mod = path.join(__dirname, 'core-dumps.js');
  const script = `const m = require(${JSON.stringify(mod)}); const before = m.coreLimits(); const r = m.disableCoreDumps(); console.log(JSON.stringify({ before, r, after: m.coreLimits() }));`;
  // Raise our child's soft limit first (allowed up to the hard limit), as a careless service manager would.
  const out = JSON.parse(execFileSync('prlimit', ['--core=1048576:unlimited', process.execPath, '-e', script], { encoding: 'utf8' })) as {
    before: { soft: string }; r: { disabled: boolean; detail: string }; after: { soft: string; hard: string };
  };
  assert.notEqual(out.before.soft, '0');
  assert.equal(out.r.disabled, true, out.r.detail);
  assert.deepEqual(out.after, { soft: '0', hard: '0' });
});

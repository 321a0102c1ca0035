// L1 memory: broker-process RSS with 0, 10k and 100k cached 32-byte keys, and with 1 MiB entries up to the
// byte bound. Each size runs in a fresh node process holding a real L1Cache (packages/cache), so the figures
// are the cache's own cost. The "pooled copies" row stores Buffer.from() copies (what the old hand-written
// LRU did) for comparison: each small copy pins a shared 8 KiB pool slab. The "nothing kept" row makes the same
// values and hash keys and drops them: the harness's own garbage (RSS a process keeps after a burst of
// allocations), the floor under every other row.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const CACHE = path.join(__dirname, '../packages/cache/dist/index.js');

function rssWith(n, size, mode, maxBytes) {
  const code = `
    const { L1Cache } = require(${JSON.stringify(CACHE)});
    const crypto = require('node:crypto');
    global.gc && global.gc();
    const base = process.memoryUsage().rss;
    // maxEntries as configured by default (100k): lru-cache preallocates its index arrays for max entries.
    const c = '${mode}' !== 'l1' ? { size: 0, bytes: 0 } : new L1Cache({ maxEntries: 100_000, maxBytes: ${maxBytes}, ttlMs: 3600_000 });
    const keep = [];
    for (let i = 0; i < ${n}; i++) {
      const v = crypto.randomBytes(${size});
      const key = crypto.createHash('sha256').update(String(i)).digest('base64');
      if ('${mode}' === 'pooled') keep.push([key, Buffer.from(v)]);
      else if ('${mode}' === 'l1') c.set(key, { tenant: 't' + (i % 4), keyring: 'default', generation: '0011223344556677' }, v);
      v.fill(0);
    }
    global.gc && global.gc();
    const m = process.memoryUsage();
    console.log(JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, base, entries: c.size + keep.length, bytes: c.bytes }));`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

async function run() {
  const rows = [];
  for (const [n, size, mode, maxBytes] of [[0, 32, 'l1', 256 << 20], [10_000, 32, 'l1', 256 << 20], [100_000, 32, 'l1', 256 << 20], [100_000, 32, 'pooled', 256 << 20], [100_000, 32, 'none', 256 << 20], [400, 1 << 20, 'l1', 256 << 20]]) {
    rows.push({ n, size, mode, maxBytes, ...rssWith(n, size, mode, maxBytes) });
  }
  return rows;
}

function report(rows) {
  const mib = (b) => (b / 2 ** 20).toFixed(0);
  const as = (r) => ({ pooled: 'Buffer.from copies (no cache structure)', none: 'nothing kept (harness garbage only)' })[r.mode] ?? `L1Cache (100k entries, ${mib(r.maxBytes)} MiB)`;
  return ['| entries offered | value size | stored as | entries kept | RSS (MiB) | V8 heap used (MiB) |', '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.n.toLocaleString('en')} | ${r.size >= 1 << 20 ? '1 MiB' : `${r.size} B`} | ${as(r)} | ${r.entries.toLocaleString('en')} | ${mib(r.rss)} | ${mib(r.heapUsed)} |`)].join('\n');
}

module.exports = { run, report };

// What an idle broker and shim cost the node they run on: wake-ups per second and CPU per second, with no
// call in flight (the shim connected, its status stream heart-beating). A shim runs on every control-plane
// node next to kube-apiserver, so every wake-up it makes for nothing is taken from the apiserver.
// Baselines in the same run: the bare grpc-js echo pair (the same libraries, no kekbroker), and a Node process
// with prom-client's default metrics at their default settings (what kekbroker did before it sampled the
// event-loop lag every 100 ms instead of every 10 ms).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const { startKekbroker, startEcho } = require('./lib/procs');

/** Every thread of the process: voluntary context switches (a wake-up each) and on-CPU time (ns, exact). */
function sample(pid) {
  let wakeups = 0;
  let cpuNs = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    const status = fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
    wakeups += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    cpuNs += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
  }
  return { wakeups, cpuNs };
}

function promClientDefaults() {
  const script = "const p = require('prom-client'); p.collectDefaultMetrics({ register: new p.Registry() }); setInterval(() => {}, 1e9);";
  const child = spawn(process.execPath, ['-e', script], { cwd: __dirname, stdio: 'ignore' });
  return { pid: child.pid, stop: () => child.kill() };
}

async function run({ seconds = 5, rounds = 3 } = {}) {
  const kek = await startKekbroker();
  const echo = await startEcho();
  const ref = promClientDefaults();
  const procs = [
    ['kekbroker shim (connected to the broker)', kek.pids.shim],
    ['kekbroker broker (local key, no Redis)', kek.pids.broker],
    ['bare grpc-js echo: front process', echo.pids.shim],
    ['bare grpc-js echo: back process', echo.pids.broker],
    ['Node + prom-client default metrics, defaults', ref.pid],
  ];
  try {
    // Start-up work settles first: module loading, JIT, and V8's memory reducer, whose full GCs after start-up
    // keep a broker's GC threads busy for some 20 s.
    await new Promise((r) => setTimeout(r, 30_000));
    const window = seconds * rounds;
    const before = procs.map(([, pid]) => sample(pid));
    await new Promise((r) => setTimeout(r, window * 1000));
    return procs.map(([name, pid], i) => {
      const after = sample(pid);
      return { name, wakeupsPerS: (after.wakeups - before[i].wakeups) / window, cpuMsPerS: (after.cpuNs - before[i].cpuNs) / 1e6 / window, window };
    });
  } finally {
    ref.stop();
    await kek.stop();
    await echo.stop();
  }
}

function report(results) {
  return [
    '',
    `Idle processes over ${results[0]?.window ?? 0} s (voluntary context switches and on-CPU time, every thread)`,
    '| process | wake-ups/s | CPU ms/s |',
    '|---|---:|---:|',
    ...results.map((r) => `| ${r.name} | ${r.wakeupsPerS.toFixed(1)} | ${r.cpuMsPerS.toFixed(2)} |`),
  ].join('\n');
}

module.exports = { run, report };

if (require.main === module) run().then((r) => console.log(report(r)), (e) => { console.error(e); process.exitCode = 1; });

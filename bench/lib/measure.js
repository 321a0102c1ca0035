// Closed-loop load: `concurrency` workers call `fn` back to back for `seconds`; returns throughput and
// latency percentiles. Wall-clock figures belong here, in benchmarks, never in tests.
//
// Every answer is checked: `fn` resolves with undefined when the answer was right, or with a string saying
// what was wrong. A wrong answer is not a data point: it is counted apart, printed, and makes `npm run bench`
// exit non-zero (a benchmark with a wrong answer has no figure).
'use strict';

let wrongTotal = 0;
const wrongSamples = [];

async function measure(fn, { seconds, concurrency, warmupSeconds = 1 }) {
  const lat = [];
  let warmupCalls = 0;
  let errors = 0;
  let wrong = 0;
  const runFor = async (ms, record) => {
    const end = performance.now() + ms;
    const worker = async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        if (!record) warmupCalls++;
        try {
          const bad = await fn();
          if (bad !== undefined) {
            wrong++;
            wrongTotal++;
            if (wrongSamples.length < 5) wrongSamples.push(bad);
          } else if (record) lat.push(performance.now() - t0);
        } catch (e) {
          // A check that throws "wrong answer: ..." (transit's batch checks) is a wrong answer, not an error.
          if (String(e && e.message).startsWith('wrong answer')) {
            wrong++;
            wrongTotal++;
            if (wrongSamples.length < 5) wrongSamples.push(e.message);
          } else if (record) errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  await runFor(warmupSeconds * 1000, false);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await runFor(seconds * 1000, true);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  lat.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : NaN);
  return {
    calls: lat.length,
    warmupCalls,
    errors,
    wrong,
    rps: lat.length / elapsed,
    p50: pct(50),
    p99: pct(99),
    clientCpuUsPerCall: lat.length ? (cpu.user + cpu.system) / lat.length : NaN,
  };
}

function fmt(r) {
  return `${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  (${r.calls} calls, ${r.errors} errors, ${r.wrong} WRONG answers)`;
}

/** Wrong answers seen by every measure() of this process (warm-up included), with a few samples. */
function wrongAnswers() {
  return { total: wrongTotal, samples: [...wrongSamples] };
}

/** Wrong answers a benchmark found outside measure() (e.g. in its own client processes). */
function recordWrong(n, sample) {
  wrongTotal += n;
  if (wrongSamples.length < 5) wrongSamples.push(sample);
}

/** The median of a list of numbers (of rounds: each benchmark reports the median round). */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

module.exports = { measure, fmt, median, wrongAnswers, recordWrong };

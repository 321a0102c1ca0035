/**
 * HA chaos, real processes: 3 broker replicas sharing a real redis-server, one shim over all three, and an
 * apiserver-like load (Encrypt + Decrypt, 3 s deadlines, every answer compared with its seed).
 *  - SIGKILL the leader again and again (restarting it each time): no failed call, a new leader each time.
 * KEKBROKER_CHAOS_KILLS sets the number of leader kills (default 20, about one a second). Hung leader and
 * Redis faults: ha-faults.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Load, fleetOnRedis } from '../helpers/fleet';
import { LOG_FILES, waitFor } from '../helpers/processes';
import { assertNoSeedsInLogs } from '../helpers/seeds';

const KILLS = Number(process.env['KEKBROKER_CHAOS_KILLS'] ?? 20);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('HA broker under chaos (3 replicas, real Redis, one shim)', { timeout: 600_000 }, () => {
  const rig = fleetOnRedis();

  it(`SIGKILL of the leader ${KILLS} times under load: 0 failed calls, 0 wrong answers, a new leader each time`, async () => {
    const load = new Load(rig.kms);
    const takeovers: number[] = [];
    try {
      await killLoop(takeovers);
    } finally {
      await load.stop();
    }
    const r = load.result;
    const sorted = [...takeovers].sort((a, b) => a - b);
    console.log(`leader kills: ${KILLS}; calls ok ${r.ok}, failed ${r.failed}, wrong ${r.wrong}; slowest call ${Math.round(r.maxMs)} ms; ` +
      `lease takeover p50 ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} ms, max ${Math.round(sorted.at(-1) ?? 0)} ms`);
    assert.equal(r.wrong, 0);
    assert.equal(r.failed, 0, r.errors.join('\n'));
    assert.ok(r.ok > KILLS * 10, `the load kept running (${r.ok} calls)`);
    assert.ok((sorted.at(-1) ?? 0) < 3000 + 5000, 'each new leader within the lease TTL (3 s) plus detection slack');
  });

  async function killLoop(takeovers: number[]): Promise<void> {
    const restarts: Array<Promise<unknown>> = [];
    for (let k = 0; k < KILLS; k++) {
      // At least two replicas up, one of them leader: kill the leader, restart it in the background.
      const leader = await waitFor('a leader and a second live replica', async () => {
        const up = (await Promise.all([0, 1, 2].map((i) => rig.fleet.readyz(i)))).filter(Boolean).length;
        const i = await rig.fleet.leaderIndex();
        return i >= 0 && up >= 2 ? i : undefined;
      }, 30_000, 50);
      const handle = rig.fleet.handles[leader];
      assert.ok(handle);
      const t0 = performance.now();
      await handle.proc.kill('SIGKILL');
      await waitFor('a new leader', async () => (await rig.fleet.leaderIndex(leader)) >= 0, 15_000, 25);
      takeovers.push(performance.now() - t0);
      restarts.push(rig.fleet.start(leader)); // cold L1; the others serve meanwhile
      await sleep(1000);
    }
    await Promise.all(restarts);
  }

  it('no seed in any log', async () => {
    await assertNoSeedsInLogs(LOG_FILES);
  });
});

/**
 * Drills on a fleet: 2 broker replicas (real processes) with a real redis-server, one keyring over the AWS,
 * GCP and Azure emulators. Every scenario runs on the leader through kekctl and must pass with 0 failed canary
 * calls and every answer right; provider-outage and broker-failover measure a time to failover, redis-outage a
 * time to recovery. A drill sent to the other replica is refused naming the leader; a provider drill with no
 * healthy passive left is refused.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startRedis, tempDir, type RedisServer } from '@kekbroker/testkit';
import { TestFleet } from '../helpers/fleet';
import { kekctlAsync, kekctlEnv } from '../helpers/kekctl';
import { waitFor } from '../helpers/processes';
import { AWS, AZURE, GCP } from './cloud-targets';

interface Report {
  state: string;
  verdict: string;
  timeToFailoverMs: number | null;
  timeToRecoveryMs: number | null;
  wrongAnswers: number;
  phases: Record<'before' | 'during' | 'after', { calls: number; failed: number }>;
  transitions: Array<{ actingActive: string | null; leader: string; redisUp: boolean | null }>;
}

describe('drills on a 2-replica fleet over three clouds', { timeout: 240_000 }, () => {
  let redis: RedisServer;
  let fleet: TestFleet;
  const clouds: Array<{ stop(): Promise<void> }> = [];
  // Asynchronous on purpose: the cloud emulators run in this process and must keep answering meanwhile.
  const kekctl = (i: number, ...args: string[]) => kekctlAsync(kekctlEnv(fleet.ports[i]?.admin, path.join(fleet.dir, 'admin.token')), args);
  const leader = () => waitFor('a leader', async () => {
    const i = await fleet.leaderIndex();
    return i >= 0 ? i : undefined;
  }, 20_000, 100);

  before(async () => {
    const providers: Record<string, string> = {};
    for (const [id, target] of [['aws', AWS], ['gcp', GCP], ['azure', AZURE]] as const) {
      const c = await target.start();
      clouds.push(c);
      Object.assign(process.env, c.env);
      providers[id] = c.providerYaml;
    }
    redis = await startRedis();
    // A long lease and Redis timeout: a drill ends when its replica loses the lease, which a loaded CI box must
    // not cause by a slow renewal (the scenarios that take the lease do so on purpose).
    fleet = await TestFleet.start(await tempDir(), 2, { redis: [redis.address], providers, extraYaml: 'health: { refreshSeconds: 2 }\n', leaseTtlMs: 10_000, redisCommandTimeoutMs: 3000 });
  });
  after(async () => {
    await fleet?.stop();
    await redis?.stop();
    for (const c of clouds) await c.stop();
  });

  it('a drill sent to the replica that does not lead is refused, naming the lease holder', async () => {
    const l = await leader();
    const r = await kekctl(1 - l, 'drill', 'run', '--scenario', 'provider-outage', '--keyring', 'default', '--tenant', 'dev', '--duration', '2');
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, new RegExp(`is not the leader: drills run on the leader only; send this to the lease holder \\(b${l + 1}:\\d+`));
  });

  const run = async (scenario: string, ...extra: string[]): Promise<Report> => {
    const l = await leader();
    // The outage must last long enough for the breaker's minimum volume of failed calls on a loaded box.
    const r = await kekctl(l, 'drill', 'run', '--scenario', scenario, '--keyring', 'default', '--tenant', 'dev', '--warmup', '1', '--duration', '6', '--recovery', '3', '--rate', '10', ...extra, '-o', 'json');
    const report = JSON.parse(r.out) as Report;
    assert.equal(report.state, 'passed', `${scenario}: ${report.verdict}\n${r.err}`);
    assert.equal(r.code, 0);
    assert.equal(report.wrongAnswers, 0);
    for (const phase of ['before', 'during', 'after'] as const) {
      assert.ok(report.phases[phase].calls > 0, `${scenario}: canary traffic in phase ${phase}`);
      assert.equal(report.phases[phase].failed, 0, `${scenario}: no failed canary call ${phase}`);
    }
    return report;
  };

  it('provider-outage of the active cloud: 0 failed canary calls, failover to another cloud measured', async () => {
    const r = await run('provider-outage');
    assert.ok(r.timeToFailoverMs !== null, JSON.stringify(r.transitions));
    assert.ok(r.transitions.some((t) => t.actingActive === 'gcp' || t.actingActive === 'azure'), `another cloud acted as active: ${JSON.stringify(r.transitions)}`);
  });

  it('provider-latency and provider-throttle on the active cloud: 0 failed canary calls', async () => {
    await run('provider-latency', '--latency-ms', '400');
    await run('provider-throttle', '--throttle-ratio', '0.5');
  });

  it('broker-failover: the leader steps down, the other replica takes the lease, the canary never fails', async () => {
    const before = await leader();
    const r = await run('broker-failover');
    assert.ok(r.timeToFailoverMs !== null, 'another replica took the lease');
    assert.ok(r.transitions.some((t) => t.leader.startsWith(`b${2 - before}:`)), `b${2 - before} led during the drill`);
  });

  it('redis-outage: the leader runs on L1 and the KMS, loses the lease, and sees Redis again', async () => {
    const r = await run('redis-outage');
    assert.ok(r.transitions.some((t) => t.redisUp === false), 'redis seen down');
    assert.ok(r.timeToRecoveryMs !== null, 'redis seen up again');
    assert.equal(r.transitions[r.transitions.length - 1]?.redisUp, true);
  });

  it('a provider drill with no healthy passive left is refused', async () => {
    const l = await leader();
    for (const p of ['gcp', 'azure']) assert.equal((await kekctl(l, 'isolate', p)).code, 0);
    try {
      const r = await kekctl(l, 'drill', 'run', '--scenario', 'provider-outage', '--keyring', 'default', '--tenant', 'dev', '--duration', '2');
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, /no healthy provider besides aws: this drill would cause a real outage/);
    } finally {
      for (const p of ['gcp', 'azure']) await kekctl(l, 'restore', p);
    }
  });
});

/**
 * Chaos on a keyring over the AWS, GCP and Azure emulators, with apiserver-like load on a real shim and
 * broker: every answer is checked against its seed. Durations are shortened from the issue's (a 15 s outage,
 * a 5 s hold-down, a 1 s half-open delay) — each still covers several breaker windows and hold-downs, which is
 * what the properties depend on; docs/operations.md says so.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { decodeEnvelope } from '@kekbroker/core';
import { tempDir } from '@kekbroker/testkit';
import { ApiserverLoad, metric, type Sealed } from '../helpers/apiserver-load';
import { brokerClient, tenantMd, unary } from '../helpers/broker-client';
import { KmsClient, grpcError } from '../helpers/kms-client';
import { LOG_FILES, allocateBrokerPorts, type BrokerPorts, restartBroker, startBroker, startShim, waitFor, type BrokerHandle, type Proc } from '../helpers/processes';
import { assertNoSeedsInLogs, recordSeed } from '../helpers/seeds';
import { AWS, AZURE, GCP } from './cloud-targets';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Cloud = Awaited<ReturnType<typeof AWS.start>>;

interface AdminStatus {
  keyrings: Array<{ keyId: string; healthy: boolean; reason: string; actingActive: string; pinned: boolean; degradedEnvelopes: Record<string, Record<string, number>> }>;
  providers: Array<{ id: string; state: string; isolated: boolean }>;
}

describe('failover across AWS, GCP and Azure under apiserver-like load', { timeout: 600_000 }, () => {
  let aws: Cloud, gcp: Cloud, azure: Cloud;
  let broker: BrokerHandle;
  let shim: { proc: Proc; socket: string };
  let kms: KmsClient;
  let keyId0: string;
  const beforeOutage: Sealed[] = [];
  let duringOutage: Sealed[] = [];
  let dir: string;

  const configFor = (ports: BrokerPorts, awsBudget: string, stateDir: string): string => {
    const tune = (yaml: string, extra = '') => yaml.replace(/}\s*$/, `, breaker: { volumeThreshold: 5, halfOpenAfterSeconds: 1 }${extra} }`);
    return `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
state: { dir: ${stateDir} }
providers:
  aws: ${tune(aws.providerYaml, `, budget: ${awsBudget}`)}
  gcp: ${tune(gcp.providerYaml)}
  azure: ${tune(azure.providerYaml)}
keyrings:
  default: { providers: [aws, gcp, azure], holdDownSeconds: 5 }
tenants:
  dev: { keyrings: [default] }
  limited: { keyrings: [default], rateLimit: { ratePerSec: 1, burst: 2 } }
`;
  };

  const admin = async (method: 'GET' | 'POST', p: string, body?: object): Promise<{ status: number; body: Record<string, unknown> }> => {
    const r = await fetch(`http://127.0.0.1:${broker.ports.admin}${p}`, {
      method, headers: { authorization: `Bearer ${broker.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  const status = async (): Promise<AdminStatus> => (await admin('GET', '/v1/admin/status')).body as unknown as AdminStatus;
  const ring = async () => (await status()).keyrings[0] as AdminStatus['keyrings'][0];
  const breaker = async (id: string) => (await status()).providers.find((p) => p.id === id)?.state;
  const fault = (c: Cloud, rule?: Parameters<Cloud['faults']['add']>[0]) => {
    if (rule) c.faults.add(rule);
    else c.faults.clear();
    c.onFaultsChanged();
  };
  const hasWrap = (s: Sealed, id: string) => decodeEnvelope(s.ciphertext).wraps.some((w) => w.providerId === id);
  /** Back to the configured active with every breaker closed, between scenarios. */
  const settle = async () => {
    for (const c of [aws, gcp, azure]) fault(c);
    await waitFor('breakers closed', async () => (await status()).providers.every((p) => p.state === 'closed'), 30_000, 200);
    await admin('POST', '/v1/admin/keyrings/default/failback');
    assert.equal((await ring()).actingActive, 'aws');
  };

  before(async () => {
    [aws, gcp, azure] = [await AWS.start(), await GCP.start(), await AZURE.start()];
    for (const c of [aws, gcp, azure]) Object.assign(process.env, c.env);
    dir = await tempDir();
    const ports = await allocateBrokerPorts();
    const config = configFor(ports, '{ ratePerSec: 40, burst: 10 }', './state');
    broker = await startBroker(dir, config, ports, 'admin-secret-failover');
    shim = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev']);
    kms = new KmsClient(shim.socket);
    keyId0 = (await waitFor('status ok', () => kms.status().catch(() => undefined))).key_id;
  });
  after(async () => {
    kms?.close();
    await shim?.proc.kill();
    await broker?.proc.kill();
    for (const c of [aws, gcp, azure]) await c?.stop();
  });

  it('active in full outage: 0 failed calls, breaker opens, acting active moves, key_id stays, failback only after the hold-down', async () => {
    const load = new ApiserverLoad(kms).start();
    await sleep(2000);
    const degraded0 = await metric(broker.ports.http, 'kekbroker_degraded_envelopes_total', { provider: 'aws' });
    const opened0 = await metric(broker.ports.http, 'kekbroker_breaker_transitions_total', { provider: 'aws', to: 'open' });
    const mark = load.sealed.length;
    fault(aws, { kind: 'outage' });
    await waitFor('acting active moves to gcp', async () => (await ring()).actingActive === 'gcp', 15_000, 100);
    await sleep(15_000);
    fault(aws);
    const outageEnd = load.sealed.length;
    await waitFor('aws breaker closes', async () => (await breaker('aws')) === 'closed', 20_000, 100);
    const closedAt = Date.now();
    assert.equal((await ring()).actingActive, 'gcp', 'no failback before the hold-down');
    await waitFor('failback to aws', async () => (await ring()).actingActive === 'aws', 20_000, 100);
    assert.ok(Date.now() - closedAt >= 4000, `failback after ${Date.now() - closedAt} ms, hold-down is 5 s`);
    await load.stop();

    assert.deepEqual(load.failures, [], 'no failed or wrong answer');
    assert.ok(load.encrypts > 20 && load.decrypts > 20, `load ran (${load.encrypts} Encrypts, ${load.decrypts} Decrypts)`);
    assert.ok(load.sealed.every((s) => s.key_id === keyId0), 'key_id never changed');
    assert.ok((await metric(broker.ports.http, 'kekbroker_breaker_transitions_total', { provider: 'aws', to: 'open' })) > opened0);
    beforeOutage.push(...load.sealed.slice(0, mark).filter((s) => hasWrap(s, 'aws')));
    duringOutage = load.sealed.slice(mark, outageEnd);
    const lacking = load.sealed.filter((s) => !hasWrap(s, 'aws')).length;
    assert.ok(lacking > 10, `${lacking} envelopes written without aws`);
    assert.equal((await metric(broker.ports.http, 'kekbroker_degraded_envelopes_total', { provider: 'aws' })) - degraded0, lacking, 'degraded count matches the envelopes lacking aws');
    assert.equal((await ring()).degradedEnvelopes[keyId0]?.['aws'], lacking, 'and per generation in the admin status');
  });

  it('broker restart with gcp down: ready with its previous key_id; every outage envelope decrypts (cold) via azure', async () => {
    fault(gcp, { kind: 'outage' });
    broker = await restartBroker(broker);
    const s = await waitFor('status ok', () => kms.status().catch(() => undefined));
    assert.equal(s.key_id, keyId0);
    const load = new ApiserverLoad(kms, { encrypt: false });
    for (const e of duringOutage.filter((x) => !hasWrap(x, 'aws'))) await load.decryptOne(e);
    assert.deepEqual(load.failures, []);
    assert.ok(load.decrypts > 10);
    await settle();
  });

  it('active answering corrupt bytes: Decrypts served by the other clouds, 0 failed; new envelopes carry only verified wraps', async () => {
    fault(aws, { kind: 'corrupt' });
    const load = new ApiserverLoad(kms, { encrypt: false });
    for (const e of beforeOutage) await load.decryptOne(e); // cold: the restarted broker never saw them
    const fresh: Sealed[] = [];
    for (let i = 0; i < 8; i++) {
      const s = await load.encryptOne();
      if (s) fresh.push(s);
    }
    assert.deepEqual(load.failures, []);
    assert.ok(beforeOutage.length > 5 && load.decrypts === beforeOutage.length);
    assert.ok(fresh.every((s) => !hasWrap(s, 'aws')), 'no unverified aws wrap');
    assert.ok((await metric(broker.ports.http, 'kekbroker_provider_bad_answers_total', { provider: 'aws' })) > 0);
    await settle();
  });

  it('disabled key on the active: Status fails naming the key; explicit failover restores writes', async () => {
    aws.keyState?.(false);
    await grpcError(kms.encrypt(recordSeed(randomBytes(32))));
    const err = await waitFor('Status error', () => kms.status().then(() => undefined, (e: Error) => e), 15_000, 100);
    assert.match(err.message, /acting active aws refuses its key .*disabled.*kekctl failover default --to gcp --pin/);
    assert.match((await ring()).reason, /failover \{"provider":"gcp","pin":true\}/);
    assert.equal((await admin('POST', '/v1/admin/keyrings/default/failover', { provider: 'gcp', pin: true })).status, 200);
    await waitFor('status ok', () => kms.status().catch(() => undefined));
    const load = new ApiserverLoad(kms);
    for (let i = 0; i < 5; i++) {
      const s = await load.encryptOne();
      if (s) await load.decryptOne(s);
    }
    assert.deepEqual(load.failures, []);
    assert.equal((await ring()).pinned, true);
    aws.keyState?.(true);
    await load.encryptOne(); // aws (passive) accepts its key again
    await settle();
  });

  it('1 s latency on the active and 3 s on a passive: every call answers within the apiserver budget', async () => {
    fault(aws, { kind: 'latency', ms: 1000 });
    fault(azure, { kind: 'latency', ms: 3000 });
    const load = new ApiserverLoad(kms, { workers: 2 }).start();
    await sleep(8000);
    await load.stop();
    assert.deepEqual(load.failures, []);
    assert.ok(load.encrypts > 3);
    await settle();
  });

  it('2 s latency on the active: its breaker opens on timeouts and every call still answers', async () => {
    const opened0 = await metric(broker.ports.http, 'kekbroker_breaker_transitions_total', { provider: 'aws', to: 'open' });
    fault(aws, { kind: 'latency', ms: 2000 });
    const load = new ApiserverLoad(kms, { workers: 2 }).start();
    await sleep(10_000);
    await load.stop();
    assert.deepEqual(load.failures, []);
    assert.ok((await metric(broker.ports.http, 'kekbroker_breaker_transitions_total', { provider: 'aws', to: 'open' })) > opened0);
    await settle();
  });

  it('throttling and error storm on the active: calls to it, SDK retries included, stay within its budgets; 0 failed Decrypts of cached seeds', async () => {
    // A second broker whose aws budget (10/s, burst 5) is far below what the writers ask for, with the SDK's
    // default retries on (maxAttempts 2). Every retry, the SDK's own included, spends the call budget and the
    // retry budget (ratio 0.1, 1/s floor); throttling is never retried. Counted at the emulator.
    const ports = await allocateBrokerPorts();
    const b2 = await startBroker(dir, configFor(ports, '{ ratePerSec: 10, burst: 5 }', './state2'), ports, 'admin-secret-failover', 'broker-budget');
    const shim2 = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev'], 'shim-budget');
    const kms2 = new KmsClient(shim2.socket);
    try {
      await waitFor('status ok', () => kms2.status().catch(() => undefined));
      const cached = new ApiserverLoad(kms2, { workers: 2, encrypt: false });
      for (let i = 0; i < 5; i++) await cached.encryptOne();
      await sleep(1000); // let the bucket refill after the warm-up
      const calls0 = aws.faults.callCount();
      const retried0 = await metric(ports.http, 'kekbroker_provider_retries', { provider: 'aws', result: 'made' });
      const refused0 = await metric(ports.http, 'kekbroker_provider_retries', { provider: 'aws', result: 'refused' });
      const t0 = Date.now();
      // About every other call fails: throttled (never retried) or a transient 500 (the SDK would retry it).
      // The fault flips every 40 ms, so calls find one or the other. (Counted rules would pile up between the
      // budget's calls, and a call that takes both answers throttled: no 500 would ever reach the SDK.)
      let n = 0;
      const storm = setInterval(() => { fault(aws); fault(aws, { kind: n++ % 2 ? 'throttle' : 'error' }); }, 40);
      const writers = new ApiserverLoad(kms2, { workers: 4, pauseMs: 0 }).start();
      cached.start();
      await sleep(6000);
      await Promise.all([writers.stop(), cached.stop()]);
      clearInterval(storm);
      const seconds = (Date.now() - t0) / 1000;
      const calls = aws.faults.callCount() - calls0;
      const retried = (await metric(ports.http, 'kekbroker_provider_retries', { provider: 'aws', result: 'made' })) - retried0;
      const refused = (await metric(ports.http, 'kekbroker_provider_retries', { provider: 'aws', result: 'refused' })) - refused0;
      assert.ok(calls <= 5 + 10 * seconds + 3, `${calls} calls to aws in ${seconds.toFixed(1)} s; budget 10/s, burst 5 (retries included)`);
      assert.ok(writers.encrypts * 2 > calls + 10, `the writers wanted ${writers.encrypts * 2} aws calls (wrap + verify), the budget let ${calls} through`);
      assert.ok(retried + refused > 0, 'the SDK asked to retry some of the 500s');
      // Retry budget: 0.1 per call, 1/s floor, 10 saved up at most.
      assert.ok(retried <= 0.1 * calls + seconds + 11, `${retried} retries for ${calls} calls in ${seconds.toFixed(1)} s`);
      assert.deepEqual(cached.failures, []);
      assert.ok(cached.decrypts > 10);
    } finally {
      fault(aws);
      kms2.close();
      await shim2.proc.kill();
      await b2.proc.kill();
    }
    await settle();
  });

  it('flapping active (2 s up / 2 s down): the acting active changes at most twice, 0 failed calls', async () => {
    const moves0 = await metric(broker.ports.http, 'kekbroker_acting_active_changes_total', { keyring: 'default' });
    const load = new ApiserverLoad(kms).start();
    for (let i = 0; i < 5; i++) {
      fault(aws, { kind: 'outage' });
      await sleep(2000);
      fault(aws);
      await sleep(2000);
    }
    await load.stop();
    assert.deepEqual(load.failures, []);
    const moves = (await metric(broker.ports.http, 'kekbroker_acting_active_changes_total', { keyring: 'default' })) - moves0;
    assert.ok(moves <= 2, `${moves} acting-active changes`);
    await settle();
  });

  it('per-tenant rate limit: a tenant over its limit gets RESOURCE_EXHAUSTED, another tenant is unaffected', async () => {
    const client = brokerClient(broker.ports.grpc);
    try {
      const wrap = (tenant: string) => unary(client, 'Wrap', { keyring: 'default', plaintext: recordSeed(randomBytes(32)) }, tenantMd(tenant));
      const results = await Promise.allSettled([wrap('limited'), wrap('limited'), wrap('limited'), wrap('limited')]);
      const refused = results.filter((r) => r.status === 'rejected').map((r) => (r).reason as grpc.ServiceError);
      assert.ok(refused.length >= 1);
      for (const e of refused) {
        assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(e.details, /tenant "limited" is over its rate limit/);
      }
      for (let i = 0; i < 5; i++) await wrap('dev');
    } finally {
      client.close();
    }
  });

  it('no log holds a seed', async () => {
    await assertNoSeedsInLogs(LOG_FILES);
  });
});

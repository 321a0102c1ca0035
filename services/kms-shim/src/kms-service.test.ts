import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '@kekbroker/telemetry';
import type { BrokerPool } from './broker-pool';
import { KmsV2Service } from './kms-service';
import { ShimMetrics } from './metrics';

/** A broker client is a boundary: a plain object with its observable state is enough here. */
function service(state: { connected: boolean; ageMs: number; healthy?: boolean; keyId?: string } | { none: true }, graceMs = 20_000) {
  const broker = {
    endpoint: '127.0.0.1:7443',
    connected: 'none' in state ? false : state.connected,
    statusAt: 'none' in state ? 0 : performance.now() - state.ageMs,
    status: 'none' in state ? undefined : { keyring: 'default', key_id: state.keyId ?? 'kekbroker/default/0011223344556677', healthy: state.healthy ?? true, reason: state.healthy === false ? 'active provider aws is down' : 'ok', leader: true, providers: [] },
  } as unknown as BrokerPool;
  const log = createLogger({ name: 'test', level: 'silent' });
  return new KmsV2Service({ keyring: 'default', broker, budgetMs: 2500, graceMs, log, metrics: new ShimMetrics(broker) });
}

test('Status is OK with a fresh status from a healthy keyring', () => {
  assert.deepEqual(service({ connected: true, ageMs: 1000 }).statusNow(), { ok: true, keyId: 'kekbroker/default/0011223344556677' });
});

test('before any status arrives, the shim cannot serve', () => {
  const s = service({ none: true }).statusNow();
  assert.equal(s.ok, false);
  assert.match((s as { reason: string }).reason, /no status from the broker yet/);
});

test('disconnected: OK inside the grace period, then not', () => {
  assert.equal(service({ connected: false, ageMs: 1000 }, 2000).statusNow().ok, true);
  const s = service({ connected: false, ageMs: 3000 }, 2000).statusNow();
  assert.equal(s.ok, false);
  assert.match((s as { reason: string }).reason, /disconnected; grace 2 s/);
});

test('connected but silent for three heartbeats (a hung broker) is not OK, even with a short grace', () => {
  assert.equal(service({ connected: true, ageMs: 6000 }, 1000).statusNow().ok, true, 'one missed heartbeat is tolerated');
  const s = service({ connected: true, ageMs: 16_000 }, 1000).statusNow();
  assert.equal(s.ok, false);
  assert.match((s as { reason: string }).reason, /connected but silent/);
});

test('an unhealthy keyring is reported with the broker\'s reason', () => {
  const s = service({ connected: true, ageMs: 10, healthy: false }).statusNow();
  assert.equal(s.ok, false);
  assert.match((s as { reason: string }).reason, /active provider aws is down/);
});

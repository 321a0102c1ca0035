import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { createLogger, createRegistry } from '@kekbroker/telemetry';
import { buildAdminApp, hashToken } from './admin';
import { AuthFailureLimiter, MAX_FAILURES, WINDOW_MS } from './auth-limiter';
import { buildHealthApp } from './health';
import { DrillRunner } from '../drills/drills';
import { UsageBook } from '../usage';
import { KeyringLifecycle } from '../lifecycle/lifecycle';
import { Rotations } from '../lifecycle/rotations';
import { MemoryLifecycleStore } from '../lifecycle/store';
import type { BrokerService } from '../service';

const TOKEN = 'c0ffee-admin-token';
const log = createLogger({ name: 'test', level: 'silent' });
// No keyrings: the drill runner never reaches the data plane here.
const leadership = { isLeader: () => true, epoch: () => 0, replicaId: 'test', cacheShared: () => false, events: new EventEmitter() };
const drills = () => new DrillRunner({ service: undefined as unknown as BrokerService, keyrings: new Map(), faultHooks: new Map(), log, fleet: undefined, leadership, leaseHolder: () => '' });
const admin = () => {
  const lifecycle = new KeyringLifecycle(new MemoryLifecycleStore(), new Map(), new Map());
  const rotations = new Rotations({ lifecycle, keyrings: new Map(), replicaId: 'test', epoch: () => 0, leaderToken: () => '', publish: async () => undefined, log });
  return buildAdminApp({
    keyrings: new Map(), guards: new Map(), tokenHashes: [hashToken(TOKEN)], log, leadership, fleet: undefined, drills: drills(), usage: new UsageBook(),
    lifecycle, rotations, retireQuietSeconds: () => 0, publishKeyring: async () => undefined,
  });
};
const auth = (t = TOKEN) => ({ authorization: `Bearer ${t}` });

test('unsupported methods answer 405 with an Allow header; unknown paths 404', async () => {
  const app = await admin();
  let r = await app.inject({ method: 'PUT', url: '/v1/admin/status', headers: auth() });
  assert.equal(r.statusCode, 405);
  assert.equal(r.headers['allow'], 'GET, HEAD');
  r = await app.inject({ method: 'GET', url: '/v1/admin/keyrings/default/rotate', headers: auth() });
  assert.equal(r.statusCode, 405);
  assert.equal(r.headers['allow'], 'POST');
  assert.match(r.json<{ errors: string[] }>().errors[0] ?? '', /method GET is not allowed/);
  r = await app.inject({ method: 'GET', url: '/v1/admin/nothing-here', headers: auth() });
  assert.equal(r.statusCode, 404);
  r = await app.inject({ method: 'PUT', url: '/v1/admin/status' });
  assert.equal(r.statusCode, 401, 'no route facts before authentication');
  const health = buildHealthApp({ keyrings: new Map(), registry: createRegistry('t'), shuttingDown: () => false, leadership });
  r = await health.inject({ method: 'POST', url: '/readyz' });
  assert.equal(r.statusCode, 405);
  r = await health.inject({ method: 'GET', url: '/readyz' });
  assert.deepEqual(r.json(), { status: 'ready', leader: true }, '/readyz tells the status and the leader flag only');
});

test('a token is compared exactly: surrounding spaces are refused', async () => {
  const app = await admin();
  assert.equal((await app.inject({ method: 'GET', url: '/v1/admin/status', headers: auth() })).statusCode, 200);
  for (const h of [`Bearer  ${TOKEN}`, `Bearer ${TOKEN} `, `Bearer ${TOKEN}\t`, `bearer ${TOKEN}`, `Bearer ${TOKEN}x`]) {
    const r = await app.inject({ method: 'GET', url: '/v1/admin/status', headers: { authorization: h } });
    assert.equal(r.statusCode, 401, JSON.stringify(h));
  }
});

test('failed authentications are rate-limited per client, then even the right token waits', async () => {
  const app = await admin();
  const from = (ip: string, t: string) => app.inject({ method: 'GET', url: '/v1/admin/status', headers: auth(t), remoteAddress: ip });
  for (let i = 0; i < MAX_FAILURES; i++) assert.equal((await from('10.0.0.7', `wrong${i}`)).statusCode, 401);
  const r = await from('10.0.0.7', TOKEN);
  assert.equal(r.statusCode, 429);
  assert.ok(Number(r.headers['retry-after']) > 0);
  assert.match(r.json<{ errors: string[] }>().errors[0] ?? '', /too many failed admin authentications/);
  assert.equal((await from('10.0.0.8', TOKEN)).statusCode, 200, 'another client is not affected');
});

test('the failure window ends: a blocked client may try again after WINDOW_MS', () => {
  let now = 1_000_000;
  const l = new AuthFailureLimiter(() => now);
  for (let i = 0; i < MAX_FAILURES - 1; i++) assert.equal(l.fail('a'), false);
  assert.equal(l.blockedFor('a'), 0, 'not blocked below the limit');
  assert.equal(l.fail('a'), true, 'the failure that reaches the limit is reported once');
  assert.ok(l.blockedFor('a') > 0);
  now += WINDOW_MS;
  assert.equal(l.blockedFor('a'), 0);
  assert.equal(l.fail('a'), false, 'a new window starts from zero');
});

test('the OpenAPI document lists every admin route with its schemas, behind the admin token', async () => {
  const app = await admin();
  assert.equal((await app.inject({ method: 'GET', url: '/v1/admin/openapi.json' })).statusCode, 401);
  const r = await app.inject({ method: 'GET', url: '/v1/admin/openapi.json', headers: auth() });
  assert.equal(r.statusCode, 200);
  const doc = r.json<{ openapi: string; paths: Record<string, Record<string, { summary?: string; requestBody?: { content: Record<string, { schema: { required?: string[] } }> } }>> }>();
  assert.equal(doc.openapi, '3.0.3');
  for (const p of ['/v1/admin/status', '/v1/admin/keyrings/{name}', '/v1/admin/keyrings/{name}/rotate', '/v1/admin/keyrings/{name}/retire', '/v1/admin/keyrings/{name}/usage', '/v1/admin/keyrings/{name}/failover', '/v1/admin/providers/{id}/isolate', '/v1/admin/drills', '/v1/admin/leader/step-down', '/v1/admin/cache/invalidate']) {
    assert.ok(doc.paths[p], `${p} is documented`);
  }
  assert.deepEqual(doc.paths['/v1/admin/keyrings/{name}/retire']?.post?.requestBody?.content['application/json']?.schema.required, ['keyId']);
  assert.match(doc.paths['/v1/admin/keyrings/{name}/rotate']?.post?.summary ?? '', /rotate every provider/);
  // The same schema validates: a retire without keyId is a 400 naming the field, before any keyring lookup.
  const bad = await app.inject({ method: 'POST', url: '/v1/admin/keyrings/x/retire', headers: auth(), payload: { force: true } });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.body, /keyId/);
});

/**
 * The admin API, on its own listener and with its own credentials (never a data-plane identity):
 *   GET  /v1/admin/status                      keyrings, key_ids, provider roles and health
 *   POST /v1/admin/keyrings/:name/rotate       rotate every provider of the keyring; returns the new key_id
 *   POST /v1/admin/leader/step-down            give up the leader lease (another replica takes it)
 *   POST /v1/admin/cache/invalidate            {keyring, tenant?, generation?, revoke?}: drop cached keys fleet-wide
 *   POST /v1/admin/cache/sealing-key/rotate    leader: new cache-sealing key for every keyring now
 * Auth: `Authorization: Bearer <token>`; the config holds only SHA-256 hashes of accepted tokens.
 */
import { createHash } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { constantTimeEqual, deadlineSignal, toKekError } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import type { Logger } from '@kekbroker/telemetry';
import type { Fleet } from '@kekbroker/ha';
import type { Leadership } from '../grpc/handlers';

export interface AdminDeps {
  keyrings: ReadonlyMap<string, Keyring>;
  tokenHashes: readonly Buffer[];
  log: Logger;
  leadership: Leadership;
  fleet: Fleet | undefined;
  /** Without Redis: apply an invalidation to this replica's cache only. */
  invalidateLocal?: (inv: { keyring: string; tenant?: string; generation?: string; revoke?: boolean }) => number;
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

function authorized(req: FastifyRequest, hashes: readonly Buffer[]): boolean {
  const h = req.headers.authorization;
  if (!h || !h.startsWith('Bearer ')) return false;
  const got = hashToken(h.slice(7).trim());
  let ok = false;
  for (const want of hashes) ok = constantTimeEqual(got, want) || ok; // no early exit: constant time over the list
  return ok;
}

export function buildAdminApp(deps: AdminDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 });
  app.addHook('onRequest', async (req, reply) => {
    if (deps.tokenHashes.length === 0) return reply.code(503).send({ errors: ['admin API disabled: configure admin.tokenSha256 or admin.tokenFile'] });
    if (!authorized(req, deps.tokenHashes)) return reply.code(401).send({ errors: ['missing or invalid admin bearer token'] });
    return undefined;
  });
  app.setErrorHandler((e, _req, reply) => {
    const err = toKekError(e);
    const status = (e as { statusCode?: number }).statusCode ?? err.httpStatus;
    if (status >= 500) deps.log.error({ err: e }, 'admin request failed');
    return reply.code(status).send({ errors: [status >= 500 && err.code === 'internal' ? 'internal error (see broker log)' : (e as Error).message] });
  });
  app.get('/v1/admin/status', async () => ({
    leader: deps.leadership.isLeader(),
    leaderEpoch: deps.leadership.epoch(),
    replica: deps.leadership.replicaId,
    fleet: deps.fleet
      ? { redis: deps.fleet.mode, redisUp: deps.fleet.health.up, redisLastError: deps.fleet.health.lastError || undefined, leaseHolder: deps.fleet.lease.holder, sealingKeys: deps.fleet.sealing.status() }
      : undefined,
    keyrings: [...deps.keyrings.values()].map((k) => k.status()),
  }));
  app.post('/v1/admin/leader/step-down', async (_req, reply) => {
    if (!deps.fleet) return reply.code(409).send({ errors: ['no redis configured: a lone replica is always the leader'] });
    const was = await deps.fleet.lease.stepDown();
    if (!was) return reply.code(409).send({ errors: [`replica ${deps.leadership.replicaId} is not the leader (lease holder: ${deps.fleet.lease.holder || 'none'})`] });
    deps.log.warn({ replica: deps.leadership.replicaId }, 'leader stepped down by admin request');
    return { replica: deps.leadership.replicaId, steppedDown: true };
  });
  app.post<{ Body: { keyring: string; tenant?: string; generation?: string; revoke?: boolean } }>('/v1/admin/cache/invalidate', {
    schema: {
      body: {
        type: 'object', required: ['keyring'], additionalProperties: false,
        properties: { keyring: { type: 'string', minLength: 1 }, tenant: { type: 'string', minLength: 1 }, generation: { type: 'string', pattern: '^[0-9a-f]{2,64}$' }, revoke: { type: 'boolean' } },
      },
    },
  }, async (req, reply) => {
    const inv = req.body;
    if (!deps.keyrings.has(inv.keyring)) return reply.code(404).send({ errors: [`no keyring named "${inv.keyring}"`] });
    if (inv.revoke && !inv.generation) return reply.code(400).send({ errors: ['revoke needs a generation (hex, as in the key_id)'] });
    const out = deps.fleet ? await deps.fleet.invalidate(inv) : { local: deps.invalidateLocal?.(inv) ?? 0, published: false };
    deps.log.warn({ ...inv, droppedHere: out.local, published: out.published }, 'cache invalidated by admin request');
    return { droppedHere: out.local, publishedToFleet: out.published };
  });
  app.post('/v1/admin/cache/sealing-key/rotate', async (_req, reply) => {
    if (!deps.fleet) return reply.code(409).send({ errors: ['no redis configured: there is no shared cache to seal'] });
    if (!deps.leadership.isLeader()) return reply.code(409).send({ errors: [`replica ${deps.leadership.replicaId} is not the leader; send this to the lease holder (${deps.fleet.lease.holder || 'none'})`] });
    return { rotated: await deps.fleet.rotateSealingKeys() };
  });
  const rotating = new Set<string>();
  app.post<{ Params: { name: string } }>('/v1/admin/keyrings/:name/rotate', async (req, reply) => {
    const k = deps.keyrings.get(req.params.name);
    if (!k) return reply.code(404).send({ errors: [`no keyring named "${req.params.name}"`] });
    // Two overlapping requests (a double click, a retried curl) must not rotate twice.
    if (rotating.has(k.name)) return reply.code(409).send({ errors: [`keyring "${k.name}" is already rotating; check GET /v1/admin/status`] });
    rotating.add(k.name);
    const before = k.keyId;
    let keyId: string;
    try {
      keyId = await k.rotate(deadlineSignal(60_000));
    } finally {
      rotating.delete(k.name);
    }
    deps.log.warn({ keyring: k.name, from: before, to: keyId }, 'keyring rotated by admin request');
    return { keyring: k.name, previousKeyId: before, keyId };
  });
  return app;
}

/**
 * The admin API, on its own listener and with its own credentials (never a data-plane identity):
 *   GET  /v1/admin/status                      replica, leader, keyrings (key_id, lifecycle), providers, fleet
 *   /v1/admin/keyrings/..., /v1/admin/providers/...   rotate, retire, usage, failover (see admin-keyrings.ts)
 *   /v1/admin/drills...                        failover drills (see admin-drills.ts)
 *   POST /v1/admin/leader/step-down            give up the leader lease (another replica takes it)
 *   POST /v1/admin/cache/invalidate            {keyring, tenant?, generation?, revoke?}: drop cached keys fleet-wide
 *   POST /v1/admin/cache/sealing-key/rotate    leader: new cache-sealing key for every keyring now
 *   GET  /v1/admin/openapi.json                the OpenAPI document, generated from the routes' schemas
 * Auth: `Authorization: Bearer <token>` (exactly one space, no surrounding whitespace); the config holds
 * only SHA-256 hashes of accepted tokens. Failed authentications are rate-limited per client address.
 * Other methods on these paths answer 405 with an Allow header.
 */
import { createHash } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { constantTimeEqual, toKekError } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import type { ProviderGuard } from '@kekbroker/resilience';
import type { Logger } from '@kekbroker/telemetry';
import type { DrillRunner } from '../drills/drills';
import type { KeyringLifecycle } from '../lifecycle/lifecycle';
import type { Rotations } from '../lifecycle/rotations';
import type { UsageBook } from '../usage';
import { adminIdentity, registerDrillRoutes } from './admin-drills';
import { registerKeyringRoutes } from './admin-keyrings';
import { schemaOf } from './admin-schemas';
import { AuthFailureLimiter, MAX_FAILURES, WINDOW_MS } from './auth-limiter';
import type { Fleet } from '@kekbroker/ha';
import type { Leadership } from '../grpc/handlers';

export interface AdminDeps {
  keyrings: ReadonlyMap<string, Keyring>;
  guards: ReadonlyMap<string, ProviderGuard>;
  tokenHashes: readonly Buffer[];
  log: Logger;
  leadership: Leadership;
  fleet: Fleet | undefined;
  /** Without Redis: apply an invalidation to this replica's cache only. */
  invalidateLocal?: (inv: { keyring: string; tenant?: string; generation?: string; revoke?: boolean }) => number;
  drills: DrillRunner;
  usage: UsageBook;
  lifecycle: KeyringLifecycle;
  rotations: Rotations;
  retireQuietSeconds: (keyring: string) => number;
  /** Tell every replica to re-read a keyring now (its lifecycle or key versions changed). */
  publishKeyring: (keyring: string) => Promise<void>;
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * RFC 6750 token syntax (b64token). A token is compared exactly as sent: `Bearer  tok` or `Bearer tok `
 * is refused rather than trimmed, so one secret has exactly one spelling in every client and proxy log.
 */
export const TOKEN_SYNTAX = /^[A-Za-z0-9\-._~+/]+=*$/;

function authorized(req: FastifyRequest, hashes: readonly Buffer[]): boolean {
  const h = req.headers.authorization;
  if (!h || !h.startsWith('Bearer ')) return false;
  const token = h.slice(7);
  if (!TOKEN_SYNTAX.test(token)) return false;
  const got = hashToken(token);
  let ok = false;
  for (const want of hashes) ok = constantTimeEqual(got, want) || ok; // no early exit: constant time over the list
  return ok;
}

/** Paths and the methods they answer; any other method on them is 405 with an Allow header. */
const ROUTES: ReadonlyArray<[string, readonly string[]]> = [
  ['/v1/admin/status', ['GET', 'HEAD']],
  ['/v1/admin/openapi.json', ['GET', 'HEAD']],
  ['/v1/admin/keyrings/:name', ['GET', 'HEAD']],
  ['/v1/admin/keyrings/:name/rotate', ['POST']],
  ['/v1/admin/keyrings/:name/retire', ['POST']],
  ['/v1/admin/keyrings/:name/usage', ['GET', 'HEAD']],
  ['/v1/admin/keyrings/:name/failover', ['POST']],
  ['/v1/admin/keyrings/:name/failback', ['POST']],
  ['/v1/admin/providers/:id/isolate', ['POST']],
  ['/v1/admin/providers/:id/restore', ['POST']],
  ['/v1/admin/drills', ['GET', 'HEAD', 'POST']],
  ['/v1/admin/drills/:id', ['GET', 'HEAD', 'DELETE']],
  ['/v1/admin/drills/:id/report.html', ['GET', 'HEAD']],
  ['/v1/admin/leader/step-down', ['POST']],
  ['/v1/admin/cache/invalidate', ['POST']],
  ['/v1/admin/cache/sealing-key/rotate', ['POST']],
];
const ALL_METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'] as const;

export function methodNotAllowed(app: FastifyInstance, url: string, allowed: readonly string[]): void {
  const others = ALL_METHODS.filter((m) => !allowed.includes(m));
  app.route({
    method: others, url,
    handler: async (req, reply) => reply.code(405).header('allow', allowed.join(', ')).send({ errors: [`method ${req.method} is not allowed on ${url}; use ${allowed.join(' or ')}`] }),
  });
}

export async function buildAdminApp(deps: AdminDeps): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'kekbroker admin API', version: '1', description: 'SRE control of a kekbroker fleet; see docs/sre-guide.md' },
      components: { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } } },
      security: [{ adminToken: [] }],
    },
  });
  app.get('/v1/admin/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  const limiter = new AuthFailureLimiter();
  app.addHook('onRequest', async (req, reply) => {
    if (deps.tokenHashes.length === 0) return reply.code(503).send({ errors: ['admin API disabled: configure admin.tokenSha256 or admin.tokenFile'] });
    const blocked = limiter.blockedFor(req.ip);
    if (blocked > 0) {
      const s = Math.ceil(blocked / 1000);
      return reply.code(429).header('retry-after', String(s)).send({ errors: [`too many failed admin authentications from ${req.ip}; retry in ${s} s`] });
    }
    if (!authorized(req, deps.tokenHashes)) {
      if (limiter.fail(req.ip)) deps.log.warn({ client: req.ip, failures: MAX_FAILURES, windowSeconds: WINDOW_MS / 1000 }, 'admin API: too many failed authentications; refusing this client for the rest of the window');
      return reply.code(401).send({ errors: ['missing or invalid admin bearer token'] });
    }
    return undefined;
  });
  for (const [url, allowed] of ROUTES) methodNotAllowed(app, url, allowed);
  app.setErrorHandler((e, _req, reply) => {
    const err = toKekError(e);
    const status = (e as { statusCode?: number }).statusCode ?? err.httpStatus;
    if (status >= 500) deps.log.error({ err: e }, 'admin request failed');
    return reply.code(status).send({ errors: [status >= 500 && err.code === 'internal' ? 'internal error (see broker log)' : (e as Error).message] });
  });
  app.get('/v1/admin/status', schemaOf('replica, leader, keyrings with lifecycle, providers, fleet'), async () => ({
    leader: deps.leadership.isLeader(),
    leaderEpoch: deps.leadership.epoch(),
    replica: deps.leadership.replicaId,
    fleet: deps.fleet
      ? {
        redis: deps.fleet.mode, redisUp: deps.fleet.health.up, redisLastError: deps.fleet.health.lastError || undefined, leaseHolder: deps.fleet.lease.holder, sealingKeys: deps.fleet.sealing.status(),
        // Every replica that wrote its presence record lately (alive: within 10 s); null while Redis is down.
        replicas: await deps.fleet.presence.list().catch(() => null),
      }
      : undefined,
    keyrings: [...deps.keyrings.values()].map((k) => ({ ...k.status(), lifecycle: deps.lifecycle.view(k.name) })),
    providers: [...deps.guards.values()].map((g) => ({ id: g.id, ...g.status(), budget: g.budget ? { ratePerSec: g.budget.ratePerSec, burst: g.budget.burst } : null })),
  }));
  app.post('/v1/admin/leader/step-down', schemaOf('give up the leader lease'), async (_req, reply) => {
    if (!deps.fleet) return reply.code(409).send({ errors: ['no redis configured: a lone replica is always the leader'] });
    const was = await deps.fleet.lease.stepDown();
    if (!was) return reply.code(409).send({ errors: [`replica ${deps.leadership.replicaId} is not the leader (lease holder: ${deps.fleet.lease.holder || 'none'})`] });
    deps.log.warn({ replica: deps.leadership.replicaId }, 'leader stepped down by admin request');
    return { replica: deps.leadership.replicaId, steppedDown: true };
  });
  app.post<{ Body: { keyring: string; tenant?: string; generation?: string; revoke?: boolean } }>('/v1/admin/cache/invalidate', {
    schema: {
      summary: 'drop cached keys of a keyring, a tenant or a generation on every replica', tags: ['admin'],
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
  app.post('/v1/admin/cache/sealing-key/rotate', schemaOf('leader: new cache-sealing key for every keyring'), async (_req, reply) => {
    if (!deps.fleet) return reply.code(409).send({ errors: ['no redis configured: there is no shared cache to seal'] });
    if (!deps.leadership.isLeader()) return reply.code(409).send({ errors: [`replica ${deps.leadership.replicaId} is not the leader; send this to the lease holder (${deps.fleet.lease.holder || 'none'})`] });
    return { rotated: await deps.fleet.rotateSealingKeys() };
  });
  // Every authenticated action (POST, DELETE) leaves one audit line: who, what, on what, and the result.
  // Admin bodies hold names and flags only, never key material. Drill routes write their own, richer lines.
  const audit = deps.log.child({ stream: 'audit' });
  app.addHook('onResponse', async (req, reply) => {
    if ((req.method !== 'POST' && req.method !== 'DELETE') || reply.statusCode === 401 || reply.statusCode === 429) return;
    if (req.url.startsWith('/v1/admin/drills')) return;
    audit.info({ audit: true, op: 'admin', method: req.method, route: req.routeOptions.url, params: req.params, body: req.body, who: adminIdentity(req), status: reply.statusCode });
  });
  registerDrillRoutes(app, deps.drills, audit);
  registerKeyringRoutes(app, deps);
  return app;
}

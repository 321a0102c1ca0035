/**
 * The admin API, on its own listener and with its own credentials (never a data-plane identity):
 *   GET  /v1/admin/status                      keyrings, key_ids, provider roles and health
 *   POST /v1/admin/keyrings/:name/rotate       rotate every provider of the keyring; returns the new key_id
 *   GET  /v1/admin/keyrings/:name/usage        wraps/unwraps per generation and tenant (this replica)
 *   /v1/admin/drills...                        failover drills (see admin-drills.ts)
 * Auth: `Authorization: Bearer <token>`; the config holds only SHA-256 hashes of accepted tokens.
 */
import { createHash } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { constantTimeEqual, deadlineSignal, toKekError } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import type { Logger } from '@kekbroker/telemetry';
import type { DrillRunner } from '../drills/drills';
import type { UsageBook } from '../usage';
import { registerDrillRoutes } from './admin-drills';

export interface AdminDeps {
  keyrings: ReadonlyMap<string, Keyring>;
  tokenHashes: readonly Buffer[];
  log: Logger;
  isLeader: () => boolean;
  drills: DrillRunner;
  usage: UsageBook;
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
    leader: deps.isLeader(),
    keyrings: [...deps.keyrings.values()].map((k) => k.status()),
  }));
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
  app.get<{ Params: { name: string } }>('/v1/admin/keyrings/:name/usage', async (req, reply) => {
    const k = deps.keyrings.get(req.params.name);
    if (!k) return reply.code(404).send({ errors: [`no keyring named "${req.params.name}"`] });
    return deps.usage.report(k.name, k.keyId);
  });
  registerDrillRoutes(app, deps.drills, deps.log.child({ stream: 'audit' }));
  return app;
}

/**
 * /healthz (the process is alive and not shutting down), /readyz (every keyring can serve: a Kubernetes
 * Service sends traffic only to ready replicas) and /metrics. Both probes answer from state: no KMS call.
 * Every replica serves the data plane, so a passive replica is ready too; `/readyz?role=leader` answers 503 on
 * passives, for a Service that should send traffic to the leader only.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Keyring } from '@kekbroker/keyring';
import type { Registry } from '@kekbroker/telemetry';
import { methodNotAllowed } from './admin';
import type { Leadership } from '../grpc/handlers';

export interface HealthDeps {
  keyrings: ReadonlyMap<string, Keyring>;
  registry: Registry;
  shuttingDown: () => boolean;
  leadership: Leadership;
}

export function buildHealthApp(deps: HealthDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 });
  app.get('/healthz', async (_req, reply) => {
    if (deps.shuttingDown()) return reply.code(503).send({ status: 'shutting-down' });
    return { status: 'ok' };
  });
  // No authentication here, so the answer is the status and the leader flag alone: keyring names, key_ids and
  // reasons are in GET /v1/admin/status on the admin listener, and every change of health is logged with its
  // reason. `?role=leader` answers 200 only on the lease holder (a Service that should reach the leader only).
  app.get<{ Querystring: { role?: string } }>('/readyz', async (req, reply) => {
    const leader = deps.leadership.isLeader();
    const ready = !deps.shuttingDown() && [...deps.keyrings.values()].every((k) => k.status().healthy) && (req.query.role !== 'leader' || leader);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', leader });
  });
  app.get('/metrics', async (_req, reply) => {
    return reply.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  for (const url of ['/healthz', '/readyz', '/metrics']) methodNotAllowed(app, url, ['GET', 'HEAD']);
  return app;
}

/**
 * /healthz (the process is alive and not shutting down), /readyz (every keyring can serve: a Kubernetes
 * Service sends traffic only to ready replicas) and /metrics. Both probes answer from state: no KMS call.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Keyring } from '@kekbroker/keyring';
import type { Registry } from '@kekbroker/telemetry';
import { methodNotAllowed } from './admin';

export interface HealthDeps {
  keyrings: ReadonlyMap<string, Keyring>;
  registry: Registry;
  shuttingDown: () => boolean;
}

export function buildHealthApp(deps: HealthDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 });
  app.get('/healthz', async (_req, reply) => {
    if (deps.shuttingDown()) return reply.code(503).send({ status: 'shutting-down' });
    return { status: 'ok' };
  });
  // No authentication here, so the answer is the status alone: keyring names, key_ids and reasons are in
  // GET /v1/admin/status on the admin listener, and every change of health is logged with its reason.
  app.get('/readyz', async (_req, reply) => {
    const ready = !deps.shuttingDown() && [...deps.keyrings.values()].every((k) => k.status().healthy);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready' });
  });
  app.get('/metrics', async (_req, reply) => {
    return reply.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  for (const url of ['/healthz', '/readyz', '/metrics']) methodNotAllowed(app, url, ['GET', 'HEAD']);
  return app;
}

/**
 * /healthz (the process is alive and not shutting down), /readyz (every keyring can serve: a Kubernetes
 * Service sends traffic only to ready replicas) and /metrics. Both probes answer from state: no KMS call.
 * Every replica serves the data plane, so a passive replica is ready too; `/readyz?role=leader` answers 503 on
 * passives, for a Service that should send traffic to the leader only.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Keyring } from '@kekbroker/keyring';
import type { Registry } from '@kekbroker/telemetry';
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
  app.get<{ Querystring: { role?: string } }>('/readyz', async (req, reply) => {
    const keyrings = [...deps.keyrings.values()].map((k) => {
      const s = k.status();
      return { keyring: s.keyring, keyId: s.keyId, healthy: s.healthy, reason: s.reason };
    });
    const leader = deps.leadership.isLeader();
    const ready = !deps.shuttingDown() && keyrings.every((k) => k.healthy) && (req.query.role !== 'leader' || leader);
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : 'not-ready', leader, leaderEpoch: deps.leadership.epoch(), replica: deps.leadership.replicaId, keyrings,
    });
  });
  app.get('/metrics', async (_req, reply) => {
    return reply.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  return app;
}

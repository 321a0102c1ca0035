/**
 * Drill routes on the admin listener (auth is the admin app's hook):
 *   POST   /v1/admin/drills                  start a drill (body: DrillSpec; defaults below)
 *   GET    /v1/admin/drills                  every kept report, newest first
 *   GET    /v1/admin/drills/:id              one report (JSON)
 *   GET    /v1/admin/drills/:id/report.html  the same as a self-contained HTML page with a timeline chart
 *   DELETE /v1/admin/drills/:id              abort: lift the fault now, keep the report
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '@kekbroker/telemetry';
import { SCENARIOS, type DrillRunner, type DrillSpec } from '../drills/drills';
import { renderDrillHtml } from '../drills/report-html';

const drillBody = {
  type: 'object',
  additionalProperties: false,
  required: ['scenario', 'keyring', 'tenant'],
  properties: {
    scenario: { type: 'string', enum: [...SCENARIOS] },
    keyring: { type: 'string', minLength: 1, maxLength: 128 },
    tenant: { type: 'string', minLength: 1, maxLength: 128 },
    provider: { type: 'string', minLength: 1, maxLength: 128 },
    durationSeconds: { type: 'number', minimum: 1, maximum: 3600, default: 30 },
    warmupSeconds: { type: 'number', minimum: 0, maximum: 600, default: 5 },
    recoverySeconds: { type: 'number', minimum: 0, maximum: 3600, default: 15 },
    canaryPerSecond: { type: 'number', minimum: 0.1, maximum: 200, default: 5 },
    latencyMs: { type: 'integer', minimum: 1, maximum: 60_000, default: 2000 },
    throttleRatio: { type: 'number', minimum: 0, maximum: 1, default: 0.5 },
    force: { type: 'boolean', default: false },
    reason: { type: 'string', maxLength: 500 },
  },
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[0-9a-f]{8}$' } } } as const;

/** Who asked: admin tokens are anonymous, so name the token by a prefix of its hash (never the token). */
export function adminIdentity(req: FastifyRequest): string {
  const h = req.headers.authorization ?? '';
  return `admin-token:${createHash('sha256').update(h.slice(7).trim()).digest('hex').slice(0, 8)}`;
}

export function registerDrillRoutes(app: FastifyInstance, runner: DrillRunner, audit: Logger): void {
  app.post<{ Body: DrillSpec }>('/v1/admin/drills', { schema: { summary: 'start a drill (leader only); refused without a healthy passive unless forced', tags: ['admin'], body: drillBody } }, async (req, reply) => {
    const who = adminIdentity(req);
    const report = runner.start(req.body, who);
    audit.info({ audit: true, op: 'admin.drill.start', who, drill: report.id, scenario: report.spec.scenario, keyring: report.spec.keyring, provider: report.spec.provider, force: report.spec.force, result: 'ok' });
    return reply.code(202).send(report);
  });
  app.get('/v1/admin/drills', { schema: { summary: 'drill reports, newest first', tags: ['admin'] } }, async () => ({ drills: runner.list() }));
  app.get<{ Params: { id: string } }>('/v1/admin/drills/:id', { schema: { summary: 'one drill report (JSON)', tags: ['admin'], params: idParams } }, async (req, reply) => {
    const r = runner.get(req.params.id);
    return r ?? reply.code(404).send({ errors: [`no drill ${req.params.id} (reports are kept in the memory of the replica that ran them)`] });
  });
  app.get<{ Params: { id: string } }>('/v1/admin/drills/:id/report.html', { schema: { summary: 'one drill report as a self-contained HTML page', tags: ['admin'], params: idParams } }, async (req, reply) => {
    const r = runner.get(req.params.id);
    if (!r) return reply.code(404).send({ errors: [`no drill ${req.params.id}`] });
    return reply.type('text/html; charset=utf-8').send(renderDrillHtml(r));
  });
  app.delete<{ Params: { id: string } }>('/v1/admin/drills/:id', { schema: { summary: 'abort a running drill and lift its fault', tags: ['admin'], params: idParams } }, async (req, reply) => {
    const r = await runner.abort(req.params.id);
    if (!r) return reply.code(404).send({ errors: [`no drill ${req.params.id}`] });
    audit.info({ audit: true, op: 'admin.drill.abort', who: adminIdentity(req), drill: r.id, result: r.state });
    return r;
  });
}

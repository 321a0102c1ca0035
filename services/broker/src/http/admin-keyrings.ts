/**
 * Admin routes on keyrings and providers:
 *   GET  /v1/admin/keyrings/:name              lifecycle: key age, last rotation, schedule, retired generations
 *   POST /v1/admin/keyrings/:name/rotate       rotate every provider now (never two rotations of a keyring at once)
 *   POST /v1/admin/keyrings/:name/retire       {keyId, force?, reason?}: refuse unwraps of an old generation
 *   GET  /v1/admin/keyrings/:name/usage        wraps/unwraps per generation and tenant (fleet-wide with Redis)
 *   POST /v1/admin/keyrings/:name/failover     {provider, pin?}: make it the acting active
 *   POST /v1/admin/keyrings/:name/failback     release a pin; back to the first healthy provider in order, now
 *   POST /v1/admin/providers/:id/isolate       no traffic to this provider (every keyring) until restore
 *   POST /v1/admin/providers/:id/restore       end an isolation
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { parseKeyId } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import type { AdminDeps } from './admin';
import { adminIdentity } from './admin-drills';
import { keyringParams, providerParams, schemaOf } from './admin-schemas';

interface RetireBody { keyId: string; force?: boolean; reason?: string }

export function registerKeyringRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const keyringOr404 = (name: string, reply: FastifyReply): Keyring | undefined => {
    const k = deps.keyrings.get(name);
    if (!k) void reply.code(404).send({ errors: [`no keyring named "${name}" (keyrings: ${[...deps.keyrings.keys()].join(', ')})`] });
    return k;
  };

  app.get<{ Params: { name: string } }>('/v1/admin/keyrings/:name', schemaOf('keyring lifecycle: key age, last rotation, schedule, retired generations', keyringParams), async (req, reply) => {
    const k = keyringOr404(req.params.name, reply);
    if (!k) return reply;
    await deps.lifecycle.reload(k.name).catch(() => undefined); // Redis down: the last copy read
    return { ...k.status(), lifecycle: deps.lifecycle.view(k.name) };
  });

  app.post<{ Params: { name: string } }>('/v1/admin/keyrings/:name/rotate', schemaOf('rotate every provider of the keyring now', keyringParams), async (req, reply) => {
    const k = keyringOr404(req.params.name, reply);
    if (!k) return reply;
    const r = await deps.rotations.rotate(k, 'admin');
    return { keyring: k.name, previousKeyId: r.from, keyId: r.to };
  });

  app.get<{ Params: { name: string } }>('/v1/admin/keyrings/:name/usage', schemaOf('wraps and unwraps per generation and tenant', keyringParams), async (req, reply) => {
    const k = keyringOr404(req.params.name, reply);
    if (!k) return reply;
    return deps.usage.report(k.name, k.keyId);
  });

  app.post<{ Params: { name: string }; Body: RetireBody }>('/v1/admin/keyrings/:name/retire', schemaOf('retire an old generation: its envelopes no longer unwrap', keyringParams, RetireSchema), async (req, reply) => {
    const k = keyringOr404(req.params.name, reply);
    if (!k) return reply;
    const { keyId, force = false, reason = '' } = req.body;
    const parsed = parseKeyId(keyId);
    if (!parsed || parsed.keyring !== k.name) return reply.code(400).send({ errors: [`"${keyId}" is not a key_id of keyring ${k.name} (kekbroker/${k.name}/<hex>; see kekctl usage ${k.name})`] });
    if (keyId === k.keyId) return reply.code(409).send({ errors: [`${keyId} is the current generation of keyring ${k.name}; rotate first, re-write the Secrets, then retire it`] });
    if (force && !reason.trim()) return reply.code(400).send({ errors: ['a forced retire needs a reason (--reason "...")'] });
    await deps.lifecycle.reload(k.name);
    const existing = deps.lifecycle.retired(k.name, keyId);
    if (existing) return { keyring: k.name, retired: existing, alreadyRetired: true };
    const quiet = deps.retireQuietSeconds(k.name);
    const readers = await deps.usage.readersSince(k.name, keyId, new Date(Date.now() - quiet * 1000));
    if (!force && readers.partial) return reply.code(503).send({ errors: [`cannot prove no tenant reads ${keyId}: ${readers.partial}; retry when Redis is back, or force with a reason`] });
    if (!force && readers.tenants.length > 0) {
      const who = readers.tenants.map((t) => `${t.tenant} (last unwrap ${t.lastSeen})`).join(', ');
      return reply.code(409).send({
        errors: [`generation ${keyId} is still read within retireQuietSeconds (${quiet} s) by: ${who}. Re-write those clusters' Secrets (kubectl get secrets -A -o json | kubectl replace -f -), wait out the quiet period, then retry; or force with a reason`],
        readers: readers.tenants,
      });
    }
    const record = { keyId, at: new Date().toISOString(), by: adminIdentity(req), reason: reason.trim(), forced: force, overrode: readers.tenants.map((t) => t.tenant) };
    await deps.lifecycle.retire(k.name, record);
    // Nothing cached for it may be served again, on any replica; the others re-read the lifecycle at once.
    const inv = { keyring: k.name, generation: parsed.generation.toString('hex'), revoke: true };
    if (deps.fleet) await deps.fleet.invalidate(inv).catch(() => undefined);
    else deps.invalidateLocal?.(inv);
    await deps.publishKeyring(k.name).catch(() => undefined);
    deps.log.warn({ keyring: k.name, ...record }, `generation ${keyId} of keyring ${k.name} retired${force ? ' (forced)' : ''}: its envelopes no longer unwrap`);
    return { keyring: k.name, retired: record, alreadyRetired: false };
  });

  app.post<{ Params: { name: string }; Body: { provider: string; pin?: boolean } }>('/v1/admin/keyrings/:name/failover', schemaOf('make a provider the acting active', keyringParams, FailoverSchema), async (req, reply) => {
    const k = keyringOr404(req.params.name, reply);
    if (!k) return reply;
    const change = k.failover(req.body.provider, req.body.pin ?? false);
    deps.log.warn({ keyring: k.name, provider: req.body.provider, pin: req.body.pin ?? false }, 'keyring failover by admin request');
    const s = k.status();
    return { keyring: k.name, actingActive: s.actingActive, pinned: s.pinned, keyId: s.keyId, change: change ?? null };
  });

  app.post<{ Params: { name: string } }>('/v1/admin/keyrings/:name/failback', schemaOf('release a pin and fail back now', keyringParams), async (req, reply) => {
    const k = keyringOr404(req.params.name, reply);
    if (!k) return reply;
    const change = k.failback();
    deps.log.info({ keyring: k.name }, 'keyring failback by admin request');
    const s = k.status();
    return { keyring: k.name, actingActive: s.actingActive, pinned: s.pinned, keyId: s.keyId, change: change ?? null };
  });

  for (const action of ['isolate', 'restore'] as const) {
    app.post<{ Params: { id: string } }>(`/v1/admin/providers/:id/${action}`, schemaOf(action === 'isolate' ? 'send no traffic to a provider until restore' : 'end an isolation', providerParams), async (req, reply) => {
      const g = deps.guards.get(req.params.id);
      if (!g) return reply.code(404).send({ errors: [`no provider named "${req.params.id}" (providers: ${[...deps.guards.keys()].join(', ')})`] });
      const changed = action === 'isolate' ? g.isolate() : g.restore();
      return { provider: g.id, isolated: g.isolated, changed };
    });
  }
}

const RetireSchema = {
  type: 'object',
  required: ['keyId'],
  additionalProperties: false,
  properties: {
    keyId: { type: 'string', minLength: 1, maxLength: 256, description: 'the generation to retire, as in the usage report' },
    force: { type: 'boolean', default: false, description: 'retire although a tenant read it within retireQuietSeconds' },
    reason: { type: 'string', maxLength: 500, description: 'why (required with force); kept in the record and the audit log' },
  },
} as const;

const FailoverSchema = {
  type: 'object',
  required: ['provider'],
  additionalProperties: false,
  properties: { provider: { type: 'string', minLength: 1, maxLength: 63 }, pin: { type: 'boolean', default: false } },
} as const;

/**
 * The transit HTTP listener: fastify with Vault's paths under `/v1/<mount>/`, Vault's response envelope and
 * `{"errors": [...]}` shape, token/mTLS auth, per-tenant rate limit, audit, metrics and an OpenAPI document
 * generated from the same schemas (GET /v1/<mount>/openapi.json, no token needed).
 */
import { randomUUID } from 'node:crypto';
import type { ServerOptions as HttpsOptions } from 'node:https';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from '@kekbroker/telemetry';
import type { Authenticator, Identity, Operation } from './auth';
import { TransitError, type TransitEngine, type TransitKey } from './engine';
import type { TenantLimiter } from './limiter';
import type { TransitMetrics } from './metrics';
import { registerRoutes } from './routes';
import { schemas } from './schemas';

export interface TransitAppOptions {
  mount: string;
  engine: TransitEngine;
  auth: Authenticator;
  limiter: TenantLimiter;
  /** The keyrings a tenant may use (from the broker's tenants config); undefined for an unknown tenant. */
  tenantKeyrings: (tenant: string) => ReadonlySet<string> | undefined;
  maxPlaintextBytes: number;
  maxBatchItems: number;
  bodyLimitBytes: number;
  deadlineMs: number;
  log: Logger;
  audit?: Logger | undefined;
  metrics?: TransitMetrics | undefined;
  https?: HttpsOptions | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    transit?: { identity: Identity; op: Operation; key: string; items: number; versions: Set<number> };
  }
}

export class Denied extends TransitError {
  constructor() {
    super(403, 'permission denied');
  }
}

export function envelope(data: unknown, warnings: string[] | null = null): Record<string, unknown> {
  return { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data, wrap_info: null, warnings, auth: null, mount_type: 'transit' };
}

export async function buildTransitApp(o: TransitAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: o.bodyLimitBytes,
    ...(o.https ? { https: o.https } : {}),
    // unicode: false: maxLength counts UTF-16 units (string.length) instead of walking every 1 KiB base64 string
    // for surrogate pairs (~4 µs a request in the profile). It can only over-count, so nothing passes that
    // should not; Ajv 8 calls the option deprecated (still honoured), so that one warning is not logged.
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false, allErrors: false, unicode: false, logger: ajvLogger(o.log) } },
    clientErrorHandler,
  }) as unknown as FastifyInstance;
  const prefix = `/v1/${o.mount}`;

  // Vault reads every body as JSON whatever its content type (curl -d sends form-urlencoded).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, {});
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return done(new TransitError(400, 'request body must be a JSON object'));
      return done(null, parsed);
    } catch (e) {
      return done(new TransitError(400, `failed to parse JSON input: ${(e as Error).message}`));
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'kekbroker transit API (Vault-compatible)', version: '1', description: 'Vault transit engine paths served by kekbroker; see docs/transit.md' },
      components: { securitySchemes: { vaultToken: { type: 'apiKey', in: 'header', name: 'X-Vault-Token' } } },
      security: [{ vaultToken: [] }],
    },
  });
  app.get(`${prefix}/openapi.json`, { schema: { hide: true } }, async () => app.swagger());

  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith(`${prefix}/openapi.json`)) return;
    const identity = o.auth.identify(req.raw);
    if (!identity) throw new Denied();
    // Rate-limited before any work (and before the body is parsed): a flood costs as little as possible.
    req.transit = { identity, op: 'read', key: '', items: 0, versions: new Set() };
    if (!o.limiter(identity.tenant)) throw new TransitError(429, 'rate limit quota exceeded');
  });

  app.addHook('onResponse', async (req, reply) => {
    const t = req.transit;
    if (!t) {
      // Refused before identification (no or unknown credentials, rate limit, malformed): still one audit line.
      o.audit?.info({ op: 'transit.unauthenticated', route: req.routeOptions.url ?? 'unknown', status: reply.statusCode, result: String(reply.statusCode) }, 'transit');
      return;
    }
    if (!t.key) {
      // Refused before a key was named (rate limit, bad body, unknown path).
      o.audit?.info({ op: 'transit.request', tenant: t.identity.tenant, route: req.routeOptions.url ?? 'unknown', status: reply.statusCode, result: String(reply.statusCode) }, 'transit');
      return;
    }
    const seconds = reply.elapsedTime / 1000;
    const result = reply.statusCode < 300 ? 'ok' : String(reply.statusCode);
    o.metrics?.observe(t.op, o.engine.has(t.key) ? t.key : 'unknown', t.identity.tenant, result, seconds, t.items);
    o.audit?.info({ op: `transit.${t.op}`, tenant: t.identity.tenant, transitKey: t.key, versions: [...t.versions], batch: t.items, status: reply.statusCode, result, latencyMs: Math.round(seconds * 1e4) / 10 }, 'transit');
  });

  app.setErrorHandler((e: Error & { statusCode?: number; validation?: unknown; code?: string }, _req, reply) => {
    if (e instanceof TransitError) return reply.code(e.status).send({ errors: [e.message] });
    if (e.validation) return reply.code(400).send({ errors: [e.message] });
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send({ errors: [`request body is larger than the limit of ${o.bodyLimitBytes} bytes`] });
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return reply.code(e.statusCode).send({ errors: [e.message] });
    o.log.error({ err: e }, 'transit request failed');
    return reply.code(500).send({ errors: ['internal error (see broker log)'] });
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ errors: ['unsupported path'] }));

  registerRoutes(app, prefix, o, schemas({ maxPlaintextBytes: o.maxPlaintextBytes, maxBatchItems: o.maxBatchItems }));
  return app;
}

/** Authorise `op` on transit key `name` for this request; throws 403 or Vault's "not found". */
export function authorize(o: TransitAppOptions, req: FastifyRequest, op: Operation, name: string, missing?: string): TransitKey {
  const t = req.transit as NonNullable<FastifyRequest['transit']>;
  t.op = op;
  t.key = name;
  const id = t.identity;
  if (!id.allows(op) || !id.allowsKey(name)) throw new Denied();
  const key = o.engine.key(name, missing);
  if (!o.tenantKeyrings(id.tenant)?.has(key.keyring.name)) throw new Denied();
  return key;
}

/** Ajv's warnings go to the broker log, except the deprecation of `unicode: false`, set on purpose. */
function ajvLogger(log: Logger): { log(...a: unknown[]): void; warn(...a: unknown[]): void; error(...a: unknown[]): void } {
  const text = (a: unknown[]): string => a.map(String).join(' ');
  return {
    log: () => undefined,
    warn: (...a) => {
      if (!text(a).startsWith('DEPRECATED: option unicode')) log.warn({ ajv: text(a) }, 'transit schema compiler warning');
    },
    error: (...a) => log.error({ ajv: text(a) }, 'transit schema compiler error'),
  };
}

/** Node's HTTP parser refuses Vault's custom LIST verb before fastify sees it: say what to use instead. */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: import('node:net').Socket): void {
  if (!socket.writable) return;
  const list = err.code === 'HPE_INVALID_METHOD';
  const body = JSON.stringify({ errors: [list ? 'the LIST method is not supported by this server: use GET with ?list=true' : 'malformed HTTP request'] });
  socket.end(`HTTP/1.1 ${list ? '405 Method Not Allowed' : '400 Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

const SHARED_SIGNAL_WINDOW_MS = 50;
const deadlineSignals = new WeakMap<TransitAppOptions, { signal: AbortSignal; until: number }>();

/**
 * The request's deadline. Requests starting within the same 50 ms share one AbortSignal.timeout: a timer per
 * request cost ~70 µs, a tenth of a whole encrypt; deadlines then end between deadlineMs - 50 ms and deadlineMs.
 */
export function signalFor(o: TransitAppOptions): AbortSignal {
  const now = performance.now();
  let cur = deadlineSignals.get(o);
  if (!cur || now >= cur.until) deadlineSignals.set(o, (cur = { signal: AbortSignal.timeout(o.deadlineMs), until: now + SHARED_SIGNAL_WINDOW_MS }));
  return cur.signal;
}

export type { FastifyReply };

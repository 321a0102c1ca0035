/**
 * The Key Vault REST surface kekbroker uses (api-version 2025-07-01 and earlier), answered the way the real
 * service answers, including the challenge-based auth handshake every new SDK client starts with.
 *
 *   POST  /keys/{name}/create              create a key (or a new version of it)
 *   GET   /keys/{name}/  | /{version}      read the latest version (trailing slash) or one version
 *   PATCH /keys/{name}/  | /{version}      update attributes (enabled), key_ops, tags
 *   POST  /keys/{name}/rotate              new version with the same type and size
 *   POST  /keys/{name}/{version}/wrapkey   {"alg","value"} -> {"kid","value"} (base64url, no padding)
 *   POST  /keys/{name}/{version}/unwrapkey
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { delay, type FaultInjector } from '../faults';
import { KEY_NAME, VaultError, type KeyVersion, type Vault } from './vault';

export interface RouteContext {
  vault: Vault;
  faults: FaultInjector;
  tenantId: string;
  /** Bearer tokens to refuse with 401, as Key Vault does for an expired or foreign token. */
  rejectedTokens: ReadonlySet<string>;
  /** Fires when the emulator closes: injected latency must not outlive it. */
  closing: AbortSignal;
}

type Operation = 'createKey' | 'getKey' | 'updateKey' | 'rotateKey' | 'wrapKey' | 'unwrapKey';

interface Route {
  op: Operation;
  name: string;
  version?: string;
}

const MAX_BODY = 64 * 1024;

export function createRequestHandler(ctx: RouteContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(ctx, req, res).catch((e: unknown) => {
      if (!res.headersSent) sendError(res, new VaultError(500, 'InternalServerError', `emulator bug: ${(e as Error).message}`));
      else res.destroy();
    });
  };
}

async function handle(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // Listen from the start: a client that aborts while we read its body must still end our waits.
  const gone = new AbortController();
  res.on('close', () => gone.abort());
  const body = await readBody(req);
  if (body === undefined) return sendError(res, new VaultError(413, 'BadParameter', `Request body larger than ${MAX_BODY} bytes.`));

  // Challenge-based auth: the SDK's first request (no Authorization, body stripped) must get a 401 with
  // the authority and resource; processing it instead would answer a body-less request with a bogus 400.
  const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (!token) return challenge(ctx, res, 'AKV10000: Request is missing a Bearer or PoP token.');
  if (ctx.rejectedTokens.has(token)) return challenge(ctx, res, 'AKV10032: Invalid issuer or token expired.', 'invalid_token');

  // The SDK writes `?api%2Dversion=...`: only a real URL parser decodes the key.
  const url = new URL(req.url ?? '/', 'https://emulator.invalid');
  if (!url.searchParams.get('api-version')) return sendError(res, new VaultError(400, 'BadParameter', 'The api-version query parameter is missing.'));
  const route = matchRoute(req.method ?? 'GET', url.pathname);
  if (!route) return sendError(res, new VaultError(404, 'NotFound', `No operation for ${req.method ?? ''} ${url.pathname}.`));
  if (!KEY_NAME.test(route.name)) return sendError(res, new VaultError(400, 'BadParameter', 'Key name must match ^[0-9a-zA-Z-]{1,127}$.'));

  const f = ctx.faults.take(route.op, route.name);
  if (f.latencyMs > 0) {
    // Stop waiting when the client goes away (an aborted SDK call closes its socket) or the emulator closes.
    // (delay() does not look at a signal that already fired, hence the explicit check.)
    const stop = AbortSignal.any([gone.signal, ctx.closing]);
    if (stop.aborted || res.destroyed || !(await delay(f.latencyMs, stop))) return;
  }
  if (f.outage) {
    // A per-key outage: drop this connection without an answer (the TcpFront turns that into a close
    // the client sees as ECONNRESET / "socket hang up"). A global outage never gets here: the front
    // refuses the connection itself.
    req.socket.destroy();
    return;
  }
  if (f.throttle) {
    res.setHeader('Retry-After', '1');
    return sendError(res, new VaultError(429, 'Throttled', 'Operations per second exceeded the vault limit; retry after 1 second.'));
  }
  if (f.error) return sendError(res, new VaultError(503, 'ServiceUnavailable', 'The service is temporarily unavailable.'));

  // Key ids echo the host the client used: CryptographyClient sends its next requests to the kid.
  const base = `https://${req.headers.host ?? '127.0.0.1'}`;
  try {
    const out = await dispatch(ctx.vault, route, body, base);
    // A corrupt answer flips the last byte of the returned key material: a wrapped blob that no longer
    // unwraps, or an unwrapped key whose trailing bytes (kekbroker's AAD digest) no longer match.
    if (f.corrupt && typeof out['value'] === 'string') {
      const v = Buffer.from(out['value'], 'base64url');
      if (v.length > 0) v[v.length - 1] = (v[v.length - 1] ?? 0) ^ 0x01;
      out['value'] = v.toString('base64url');
    }
    send(res, 200, out);
  } catch (e) {
    if (e instanceof VaultError) return sendError(res, e);
    throw e;
  }
  return undefined;
}

function matchRoute(method: string, pathname: string): Route | undefined {
  let parts: string[];
  try {
    parts = pathname.split('/').slice(1).map((p) => decodeURIComponent(p));
  } catch {
    return undefined; // malformed percent-encoding
  }
  if (parts[0] !== 'keys' || !parts[1]) return undefined;
  const [, name, second = '', third, ...rest] = parts;
  if (rest.length > 0) return undefined;
  if (third === undefined) {
    if (method === 'POST' && second === 'create') return { op: 'createKey', name };
    if (method === 'POST' && second === 'rotate') return { op: 'rotateKey', name };
    if (method === 'GET') return { op: 'getKey', name, version: second };
    if (method === 'PATCH') return { op: 'updateKey', name, version: second };
    return undefined;
  }
  if (method === 'POST' && third === 'wrapkey') return { op: 'wrapKey', name, version: second };
  if (method === 'POST' && third === 'unwrapkey') return { op: 'unwrapKey', name, version: second };
  return undefined;
}

async function dispatch(vault: Vault, r: Route, body: Buffer, base: string): Promise<Record<string, unknown>> {
  const b = parseJson(body);
  switch (r.op) {
    case 'createKey': {
      const attrs = (b['attributes'] ?? {}) as { enabled?: unknown };
      const kv = await vault.create(r.name, {
        kty: String(b['kty'] ?? ''),
        size: typeof b['key_size'] === 'number' ? b['key_size'] : undefined,
        keyOps: Array.isArray(b['key_ops']) ? b['key_ops'].map(String) : undefined,
        enabled: typeof attrs.enabled === 'boolean' ? attrs.enabled : undefined,
        tags: isStringMap(b['tags']) ? b['tags'] : undefined,
      });
      return keyBundle(base, r.name, kv);
    }
    case 'getKey':
      return keyBundle(base, r.name, vault.get(r.name, r.version));
    case 'rotateKey':
      return keyBundle(base, r.name, await vault.rotate(r.name));
    case 'updateKey': {
      const attrs = (b['attributes'] ?? {}) as { enabled?: unknown };
      const kv = vault.update(r.name, r.version, {
        enabled: typeof attrs.enabled === 'boolean' ? attrs.enabled : undefined,
        keyOps: Array.isArray(b['key_ops']) ? b['key_ops'].map(String) : undefined,
        tags: isStringMap(b['tags']) ? b['tags'] : undefined,
      });
      return keyBundle(base, r.name, kv);
    }
    case 'wrapKey':
    case 'unwrapKey': {
      const kv = vault.get(r.name, r.version);
      if (typeof b['alg'] !== 'string' || typeof b['value'] !== 'string') throw new VaultError(400, 'BadParameter', 'alg and value are required.');
      const value = vault.wrapOrUnwrap(kv, r.op, b['alg'], Buffer.from(b['value'], 'base64url'));
      return { kid: `${base}/keys/${r.name}/${kv.version}`, value: value.toString('base64url') };
    }
  }
}

/** A KeyBundle as Key Vault returns it: public JWK (never `d` or `k`), attributes in epoch seconds. */
export function keyBundle(base: string, name: string, kv: KeyVersion): Record<string, unknown> {
  const key: Record<string, unknown> = { kid: `${base}/keys/${name}/${kv.version}`, kty: kv.kty, key_ops: kv.keyOps };
  if (kv.rsa) {
    key['n'] = kv.rsa.n.toString('base64url');
    key['e'] = kv.rsa.e.toString('base64url');
  }
  return {
    key,
    attributes: { enabled: kv.enabled, created: kv.created, updated: kv.updated, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90, exportable: false },
    tags: kv.tags,
  };
}

function challenge(ctx: RouteContext, res: ServerResponse, message: string, error?: string): void {
  const parts = [`authorization="https://login.microsoftonline.com/${ctx.tenantId}"`, 'resource="https://vault.azure.net"'];
  if (error) parts.push(`error="${error}"`);
  res.setHeader('WWW-Authenticate', `Bearer ${parts.join(', ')}`);
  sendError(res, new VaultError(401, 'Unauthorized', message));
}

function sendError(res: ServerResponse, e: VaultError): void {
  const error: Record<string, unknown> = { code: e.code, message: e.message };
  if (e.innerCode) error['innererror'] = { code: e.innerCode };
  send(res, e.status, { error });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'x-ms-request-id': randomUUID(),
    'x-ms-keyvault-service-version': '1.9.0.0',
  });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size <= MAX_BODY ? Buffer.concat(chunks) : undefined));
    req.on('error', reject);
  });
}

function parseJson(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new VaultError(400, 'BadParameter', 'The request body is not a JSON object.');
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

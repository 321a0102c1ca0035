/**
 * A real broker process with the transit API on, for the Vault-client tests: three tenants with their own
 * tokens (config holds only their SHA-256), keys on the local provider, a policy file for keys/:name/config.
 */
import { createHash } from 'node:crypto';
import { freePort, tempDir } from '@kekbroker/testkit';
import { allocateBrokerPorts, startBroker, type BrokerHandle } from './processes';

export const TOKENS = {
  admin: 'hvs.dev-all-operations-token',
  app: 'hvs.dev-app-encrypt-decrypt',
  other: 'hvs.tenant-b-token',
  limited: 'hvs.limited-tenant-token',
  reloaded: 'hvs.added-by-sighup',
} as const;

export const sha = (t: string): string => createHash('sha256').update(t).digest('hex');

export interface TransitBroker extends BrokerHandle {
  transitPort: number;
  url: string;
  dir: string;
}

export function transitConfig(ports: { grpc: number; http: number; admin: number }, transitPort: number, mount: string, extraIdentities = ''): string {
  return `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
providers:
  local: { type: local, keystore: ./keystore.json }
keyrings:
  default: { providers: [local] }
  other: { providers: [local] }
tenants:
  dev: { keyrings: [default] }
  tenant-b: { keyrings: [other] }
  limited: { keyrings: [default] }
transit:
  enabled: true
  listen: "127.0.0.1:${transitPort}"
  mount: ${mount}
  policyFile: ./transit-policy.json
  maxPlaintextBytes: 65536
  bodyLimitBytes: 1048576
  rateLimit: { tenants: { limited: { requestsPerSecond: 1, burst: 5 } } }
  keys:
    app: { keyring: default }
    orders: { keyring: default, derived: true }
    b-key: { keyring: other }
  identities:
    - { tokenSha256: "${sha(TOKENS.admin)}", tenant: dev, operations: [encrypt, decrypt, rewrap, datakey, read, rotate, config] }
    - { tokenSha256: "${sha(TOKENS.app)}", tenant: dev, keys: [app], operations: [encrypt, decrypt] }
    - { tokenSha256: "${sha(TOKENS.other)}", tenant: tenant-b, operations: [encrypt, decrypt, rewrap, datakey, read, rotate, config] }
    - { tokenSha256: "${sha(TOKENS.limited)}", tenant: limited, keys: [app], operations: [encrypt] }
${extraIdentities}`;
}

export async function startTransitBroker(mount = 'transit'): Promise<TransitBroker> {
  const dir = await tempDir();
  const ports = await allocateBrokerPorts();
  const transitPort = await freePort();
  const h = await startBroker(dir, transitConfig(ports, transitPort, mount), ports, 'admin-token-transit');
  return { ...h, transitPort, url: `http://127.0.0.1:${transitPort}`, dir };
}

/** A raw request; returns status and parsed JSON body (undefined for an empty body). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- arbitrary JSON answers, checked field by field by the tests
export type Json = any;

export async function call(b: TransitBroker, method: string, path: string, body?: unknown, token: string = TOKENS.admin): Promise<{ status: number; body: Json }> {
  const init: RequestInit = { method, headers: { 'x-vault-token': token } };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const r = await fetch(`${b.url}${path}`, init);
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

export const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

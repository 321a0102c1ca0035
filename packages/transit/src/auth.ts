/**
 * Who is calling, and may they? A caller is identified by a Vault token (`X-Vault-Token`, or
 * `Authorization: Bearer`) whose SHA-256 is in config, or by an mTLS client certificate name; each identity
 * maps to one tenant and a policy (transit keys and operations). Identities are swapped whole on SIGHUP.
 */
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { IncomingMessage } from 'node:http';

export const OPERATIONS = ['encrypt', 'decrypt', 'rewrap', 'datakey', 'read', 'rotate', 'config'] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface IdentityConfig {
  tokenSha256?: string | undefined;
  clientCertName?: string | undefined;
  tenant: string;
  /** Transit key names, or "*" for every key the tenant's keyrings allow. */
  keys: readonly string[];
  operations: readonly Operation[];
}

export interface Identity {
  tenant: string;
  allowsKey(name: string): boolean;
  allows(op: Operation): boolean;
}

function toIdentity(c: IdentityConfig): Identity {
  const keys = new Set(c.keys);
  const ops = new Set<Operation>(c.operations);
  return { tenant: c.tenant, allowsKey: (n) => keys.has('*') || keys.has(n), allows: (op) => ops.has(op) };
}

const PROVEN_MAX = 10_000;

export class Authenticator {
  private byToken = new Map<string, Identity>();
  private byCert = new Map<string, Identity>();
  /**
   * Tokens already proven (their SHA-256 matched), so a client's next requests skip the hash (~9 µs each in
   * the transit profile). Only matches are kept: an unknown token is hashed every time, and the lookup of a
   * guess never compares it with a stored token unless the string hashes collide, so it reveals nothing a
   * hash compare would not. Emptied on replace() (SIGHUP), bounded by PROVEN_MAX.
   */
  private proven = new Map<string, Identity>();

  constructor(identities: readonly IdentityConfig[]) {
    this.replace(identities);
  }

  replace(identities: readonly IdentityConfig[]): void {
    const byToken = new Map<string, Identity>();
    const byCert = new Map<string, Identity>();
    for (const c of identities) {
      if (c.tokenSha256) byToken.set(c.tokenSha256.toLowerCase(), toIdentity(c));
      if (c.clientCertName) byCert.set(c.clientCertName, toIdentity(c));
    }
    this.byToken = byToken;
    this.byCert = byCert;
    this.proven = new Map();
  }

  /** The caller's identity, or undefined (answered 403 "permission denied", as Vault does). */
  identify(req: IncomingMessage): Identity | undefined {
    const token = tokenOf(req);
    // Hash first: the map lookup then depends only on the digest, never on how much of a token matched.
    if (token) {
      const known = this.proven.get(token);
      if (known) return known;
      const id = this.byToken.get(createHash('sha256').update(token, 'utf8').digest('hex'));
      if (id) {
        if (this.proven.size >= PROVEN_MAX) this.proven.clear();
        this.proven.set(token, id);
      }
      return id;
    }
    const sock = req.socket as TLSSocket;
    if (sock.encrypted && sock.authorized) {
      for (const name of certNames(sock)) {
        const id = this.byCert.get(name);
        if (id) return id;
      }
    }
    return undefined;
  }
}

function tokenOf(req: IncomingMessage): string | undefined {
  const v = req.headers['x-vault-token'];
  if (typeof v === 'string' && v.length > 0) return v.trim();
  const a = req.headers.authorization;
  if (typeof a === 'string' && a.startsWith('Bearer ')) return a.slice(7).trim();
  return undefined;
}

/** "CN=<common name>" and every SAN URI of the peer certificate (the same names tenants use for gRPC). */
function certNames(sock: TLSSocket): string[] {
  const cert = sock.getPeerCertificate();
  const names: string[] = [];
  const cn = cert.subject?.CN;
  if (typeof cn === 'string') names.push(`CN=${cn}`);
  for (const part of (cert.subjectaltname ?? '').split(', ')) if (part.startsWith('URI:')) names.push(part.slice(4));
  return names;
}

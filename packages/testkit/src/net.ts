/** Free ports, temp dirs and a guard that proves no test traffic leaves the loopback interface. */
import { promises as fs } from 'node:fs';
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function tempDir(prefix = 'kekbroker-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]', '']);

function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return true;
  if (LOOPBACK_HOSTS.has(host)) return true;
  if (host.startsWith('127.')) return true;
  if (host.startsWith('/') || host.startsWith('\0')) return true; // unix sockets
  return false;
}

export interface LoopbackGuard {
  /** Non-loopback connect targets and DNS lookups seen since install, e.g. "connect 169.254.169.254:80". */
  readonly violations: readonly string[];
  uninstall(): void;
}

/**
 * Record every outbound connect and DNS lookup in this process. Tests assert `violations` is empty: that
 * is how we prove an SDK never reached for a metadata server or a real cloud endpoint.
 */
export function installLoopbackGuard(): LoopbackGuard {
  const violations: string[] = [];
  // eslint-disable-next-line @typescript-eslint/unbound-method -- saved to be re-applied with the right `this` below
  const origConnect = net.Socket.prototype.connect;
  const origLookup = dns.lookup;
  const origPromLookup = dns.promises.lookup;
  net.Socket.prototype.connect = function patched(this: net.Socket, ...args: unknown[]) {
    const first = args[0];
    let host: string | undefined;
    let port: unknown;
    if (Array.isArray(first)) {
      const o = first[0] as { host?: string; port?: unknown; path?: string } | undefined;
      host = o?.path ?? o?.host;
      port = o?.port;
    } else if (typeof first === 'object' && first !== null) {
      const o = first as { host?: string; port?: unknown; path?: string };
      host = o.path ?? o.host;
      port = o.port;
    } else if (typeof first === 'string' && Number.isNaN(Number(first))) {
      host = first; // unix path
    } else {
      port = first;
      host = typeof args[1] === 'string' ? args[1] : undefined;
    }
    if (!isLoopback(host)) violations.push(`connect ${String(host)}:${String(port)}`);
    return (origConnect as (...a: unknown[]) => net.Socket).apply(this, args);
  };
  (dns as { lookup: unknown }).lookup = function patched(hostname: string, ...rest: unknown[]) {
    if (!isLoopback(hostname)) violations.push(`dns ${hostname}`);
    return (origLookup as (...a: unknown[]) => unknown)(hostname, ...rest);
  };
  (dns.promises as { lookup: unknown }).lookup = function patched(hostname: string, ...rest: unknown[]) {
    if (!isLoopback(hostname)) violations.push(`dns ${hostname}`);
    return (origPromLookup as (...a: unknown[]) => unknown)(hostname, ...rest);
  };
  return {
    violations,
    uninstall() {
      net.Socket.prototype.connect = origConnect;
      (dns as { lookup: unknown }).lookup = origLookup;
      (dns.promises as { lookup: unknown }).lookup = origPromLookup;
    },
  };
}

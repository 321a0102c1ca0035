/** Free ports, temp dirs and a guard that proves no test traffic leaves the loopback interface. */
import { promises as fs } from 'node:fs';
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * A free 127.0.0.1 TCP port for a server a test starts, chosen below the kernel's ephemeral range
 * (32768–60999 on Linux): a port the kernel handed out with `listen(0)` can be taken again as the local
 * port of any outgoing connection (to Redis, an emulator, ...) before the server binds it, which fails that
 * start with EADDRINUSE on a busy test run. Each port is handed out once per process.
 */
export async function freePort(opts: { alsoFree?: number } = {}): Promise<number> {
  // `alsoFree`: the server also binds port + alsoFree (Redis Cluster's bus is port + 10000). Both must be
  // free and below the ephemeral range, so the first port comes from a smaller range.
  const extra = opts.alsoFree ?? 0;
  const high = HIGH - extra;
  if (high <= LOW) throw new Error(`freePort: no room below the ephemeral range for a second port at +${extra}`);
  for (let i = 0; i < 100; i++) {
    const port = LOW + Math.floor(Math.random() * (high - LOW));
    if (handedOut.has(port) || (extra && handedOut.has(port + extra))) continue;
    if ((await canBind(port)) && (!extra || (await canBind(port + extra)))) {
      handedOut.add(port);
      if (extra) handedOut.add(port + extra);
      return port;
    }
  }
  throw new Error(`no free port found between ${LOW} and ${high}`);
}

const LOW = 20_000;
const HIGH = 32_700;
const handedOut = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
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

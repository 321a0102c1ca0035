/**
 * The unix socket kube-apiserver dials. A SIGKILLed shim leaves its socket file behind, so we remove a
 * stale one before binding — but only if it is a socket and nobody answers on it (never delete a live
 * shim's socket or an unrelated file). The socket is created 0600 (umask during bind, then chmod).
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';

export function socketPathOf(endpoint: string): string {
  return endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : endpoint;
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function removeStaleSocket(socketPath: string): Promise<void> {
  const st = await fs.lstat(socketPath).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) throw new Error(`--socket ${socketPath} exists and is not a socket; refusing to replace it: remove it or choose another path`);
  if (await answers(socketPath)) throw new Error(`--socket ${socketPath} is in use by a running process (another shim?); stop it first or choose another --socket`);
  await fs.unlink(socketPath);
}

/**
 * Serve `server` on the unix socket (created 0600). Broken clients (a malformed HTTP/2 preface, SETTINGS
 * or HPACK, or nothing at all) are freed by the server's keepalive pings: a connection that does not
 * answer one is closed. Without them grpc-js would keep such a connection's descriptor forever.
 */
export async function bindUnixSocket(server: grpc.Server, socketPath: string): Promise<void> {
  await fs.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`--socket: cannot create the folder of ${socketPath} (${e.code ?? e.message}); choose a path in a writable folder`);
  });
  await removeStaleSocket(socketPath);
  const old = process.umask(0o177);
  try {
    await new Promise<number>((resolve, reject) =>
      server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(new Error(`--socket: cannot listen on ${socketPath} (${e.message}); check that its folder is writable by this user, or choose another --socket`)) : resolve(p),
      ),
    );
  } finally {
    process.umask(old);
  }
  await fs.chmod(socketPath, 0o600);
}

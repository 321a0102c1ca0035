/**
 * The unix socket kube-apiserver dials. A SIGKILLed shim leaves its socket file behind, so we remove a
 * stale one before binding — but only if it is a socket and nobody answers on it (never delete a live
 * shim's socket or an unrelated file). The socket is created 0600 (umask during bind, then chmod).
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Duplex } from 'node:stream';
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
 * `conn` as a Duplex that destroys itself after `idleMs` without a byte in either direction. (An HTTP/2
 * session reads a bare net.Socket's handle natively, where socket.setTimeout never sees the traffic, so
 * the bytes are relayed here; KMS v2 messages are tiny, the relay costs little.)
 */
function closeWhenSilent(conn: net.Socket, idleMs: number): Duplex {
  const timer = setTimeout(() => relay.destroy(), idleMs);
  timer.unref();
  const relay: Duplex = new Duplex({
    read() {
      conn.resume();
    },
    write(chunk: Buffer, _enc, done) {
      timer.refresh();
      conn.write(chunk, done);
    },
    final(done) {
      conn.end(done);
    },
    destroy(err, done) {
      clearTimeout(timer);
      conn.destroy();
      done(err);
    },
  });
  conn.on('data', (b: Buffer) => {
    timer.refresh();
    if (!relay.push(b)) conn.pause();
  });
  conn.on('end', () => relay.push(null));
  conn.on('error', (e) => relay.destroy(e));
  conn.on('close', () => relay.destroy());
  return relay;
}

/**
 * Serve `server` on the unix socket. We own the listening socket (grpc-js's connection injector takes
 * each accepted connection) so that a connection that goes silent is closed: a client that sends the
 * HTTP/2 preface and then a malformed frame is never a gRPC session, and grpc-js would keep its file
 * descriptor open forever. Live clients are never silent that long: the server pings them (keepalive,
 * set on the grpc.Server) and they answer.
 */
export async function listenUnixSocket(server: grpc.Server, socketPath: string, idleMs: number): Promise<{ close(): Promise<void> }> {
  await fs.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`--socket: cannot create the folder of ${socketPath} (${e.code ?? e.message}); choose a path in a writable folder`);
  });
  await removeStaleSocket(socketPath);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener = net.createServer((conn) => injector.injectConnection(closeWhenSilent(conn, idleMs)));
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`--socket: cannot listen on ${socketPath}: ${e.code ?? e.message}; check that its folder is writable by this user, or choose another --socket`)));
      listener.listen(socketPath, () => resolve());
    });
  } finally {
    process.umask(old);
  }
  await fs.chmod(socketPath, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        injector.destroy();
        listener.close(() => resolve());
      }),
  };
}

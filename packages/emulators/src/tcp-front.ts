/**
 * A TCP front door for an emulator: it listens on the public port and pipes each connection to the
 * emulator's real server on an internal port. During a global outage it resets new connections and
 * destroys open ones, which is what a client sees when a KMS endpoint goes away (ECONNRESET / UNAVAILABLE),
 * whatever the protocol behind (HTTP/1.1, HTTP/2 gRPC, TLS).
 */
import net from 'node:net';
import type { FaultInjector } from './faults';

export class TcpFront {
  private readonly server: net.Server;
  private readonly open = new Set<net.Socket>();
  port = 0;

  constructor(private readonly faults: FaultInjector, private readonly backendPort: number) {
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
    return this.port;
  }

  /** Drop every open connection now (called when an outage starts). */
  dropAll(): void {
    for (const s of this.open) s.resetAndDestroy();
  }

  private accept(client: net.Socket): void {
    if (this.faults.globalOutage) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.backendPort, '127.0.0.1');
    // A proxy must not add Nagle delays: small HTTP/2 frames would stall ~40 ms on delayed ACKs.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.open.add(client);
    const done = (): void => {
      this.open.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    // Forward data but not half-closes: when one side ends, let the other drain, then close both. Piping
    // the FIN through and destroying later left node 20 spinning in exit cleanup (seen with gdb).
    client.pipe(upstream, { end: false });
    upstream.pipe(client, { end: false });
    const endAfterDrain = (other: net.Socket): void => {
      if (other.writableLength === 0) done();
      else other.once('drain', done);
    };
    client.once('end', () => endAfterDrain(upstream));
    upstream.once('end', () => endAfterDrain(client));
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

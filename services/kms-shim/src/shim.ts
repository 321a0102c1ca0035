/** Assembles a shim: broker client, KMS v2 server on the unix socket, optional metrics/health listener. */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { acceptPreserialized, kmsV2 } from '@kekbroker/proto';
import type { Logger } from '@kekbroker/telemetry';
import { BrokerPool } from './broker-pool';
import { KmsV2Service } from './kms-service';
import { ShimMetrics } from './metrics';
import { bindUnixSocket } from './socket';

export interface ShimOptions {
  socket: string;
  brokers: string[];
  keyring: string;
  budgetMs: number;
  graceMs: number;
  /** mTLS to the broker; absent = plaintext dev mode (loopback brokers only). */
  tls?: { caFile: string; certFile: string; keyFile: string; serverName?: string };
  devTenant?: string;
  metricsListen?: { host: string; port: number };
}

export class Shim {
  private constructor(
    private readonly server: grpc.Server,
    private readonly broker: BrokerPool,
    private readonly http: http.Server | undefined,
    private readonly socket: string,
    private readonly log: Logger,
  ) {}

  static async start(o: ShimOptions, log: Logger): Promise<Shim> {
    const credentials = o.tls
      ? grpc.credentials.createSsl(await fs.readFile(o.tls.caFile), await fs.readFile(o.tls.keyFile), await fs.readFile(o.tls.certFile))
      : grpc.credentials.createInsecure();
    const broker = new BrokerPool({ endpoints: o.brokers, keyring: o.keyring, credentials, devTenant: o.tls ? undefined : o.devTenant, serverName: o.tls?.serverName });
    broker.on('connected', (ep: string) => log.info({ broker: ep, keyId: broker.status?.key_id }, 'connected to broker'));
    broker.on('suspect', (ep: string, why: string) => log.warn({ broker: ep, why }, 'broker replica missed a deadline: calls go to another replica until it answers again'));
    broker.on('disconnected', (why: string, _code: number, was: boolean) => (was ? log.warn : log.debug).call(log, { why }, 'broker connection lost; reconnecting'));
    let lastKeyId: string | undefined;
    broker.on('status', (s: { key_id: string; healthy: boolean; reason: string }) => {
      if (s.key_id !== lastKeyId) log.info({ keyId: s.key_id, previous: lastKeyId }, 'key_id changed');
      lastKeyId = s.key_id;
    });
    const metrics = new ShimMetrics(broker);
    const service = new KmsV2Service({ keyring: o.keyring, broker, budgetMs: o.budgetMs, graceMs: o.graceMs, log, metrics });
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 });
    // Decrypt answers are serialised by their handler so it can zero the plaintext at once (core/secrets.ts).
    server.addService(acceptPreserialized(kmsV2().KeyManagementService.service), service.handlers());
    broker.start();
    await bindUnixSocket(server, o.socket);
    let httpServer: http.Server | undefined;
    if (o.metricsListen) {
      httpServer = http.createServer((req, res) => {
        if (req.url === '/metrics') {
          void metrics.registry.metrics().then((m) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(m));
        } else if (req.url === '/healthz') {
          const s = service.statusNow();
          res.writeHead(s.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(s.ok ? { status: 'ok', keyId: s.keyId } : { status: 'unavailable', reason: s.reason }));
        } else {
          res.writeHead(404).end();
        }
      });
      await new Promise<void>((resolve) => httpServer?.listen(o.metricsListen?.port, o.metricsListen?.host, resolve));
    }
    log.info({ socket: o.socket, brokers: o.brokers, keyring: o.keyring, budgetMs: o.budgetMs, graceMs: o.graceMs, tls: Boolean(o.tls) }, 'kms-shim listening');
    return new Shim(server, broker, httpServer, o.socket, log);
  }

  async stop(): Promise<void> {
    this.log.info('kms-shim stopping');
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 3000);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
    this.broker.stop();
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    await fs.unlink(this.socket).catch(() => undefined);
  }
}

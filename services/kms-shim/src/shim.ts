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
  /** Ping every socket connection this often; one that does not answer within the same time is closed. */
  keepaliveMs?: number;
  version?: string;
}

const DEFAULT_KEEPALIVE_MS = 20_000;

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
      ? grpc.credentials.createSsl(await readTlsFile(o.tls.caFile, '--tls-ca'), await readTlsFile(o.tls.keyFile, '--tls-key'), await readTlsFile(o.tls.certFile, '--tls-cert'))
      : grpc.credentials.createInsecure();
    const broker = new BrokerPool({ endpoints: o.brokers, keyring: o.keyring, credentials, devTenant: o.tls ? undefined : o.devTenant, serverName: o.tls?.serverName });
    broker.on('suspect', (ep: string, why: string) => log.warn({ broker: ep, why }, 'broker replica missed a deadline: calls go to another replica until it answers again'));
    const metrics = new ShimMetrics(broker, o.version);
    const service = new KmsV2Service({ keyring: o.keyring, broker, budgetMs: o.budgetMs, graceMs: o.graceMs, log, metrics });
    const keepaliveMs = o.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    const server = new grpc.Server({
      'grpc.max_receive_message_length': 64 * 1024,
      // kube-apiserver answers pings; a malformed or dead client does not, and its connection is closed.
      'grpc.keepalive_time_ms': keepaliveMs,
      'grpc.keepalive_timeout_ms': keepaliveMs,
      'grpc.enable_channelz': 0,
    });
    // Decrypt answers are serialised by their handler so it can zero the plaintext at once (core/secrets.ts).
    server.addService(acceptPreserialized(kmsV2().KeyManagementService.service), service.handlers());
    // Bind everything first: a shim that cannot listen must exit before it dials the broker.
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
      const { host, port } = o.metricsListen;
      await new Promise<void>((resolve, reject) => {
        httpServer?.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`--metrics-listen: cannot bind ${host}:${port} (${e.code ?? e.message}); stop the other process or choose another address`)));
        httpServer?.listen(port, host, resolve);
      });
    }
    broker.on('connected', (ep: string) => log.info({ broker: ep, keyId: broker.status?.key_id }, 'connected to broker'));
    // The reason a shim cannot serve (an unmapped certificate, a keyring this tenant may not use, a TLS
    // name mismatch) must be visible at the default level: log each new reason once, at warn.
    let lastWhy: string | undefined;
    broker.on('disconnected', (why: string, _code: number, was: boolean) => {
      if (was || why !== lastWhy) log.warn({ broker: broker.lastTried, why }, was ? 'broker connection lost; reconnecting' : 'cannot get status from the broker; retrying');
      else log.debug({ why }, 'broker still unreachable; retrying');
      lastWhy = why;
    });
    let lastKeyId: string | undefined;
    let lastHealthy: boolean | undefined;
    broker.on('status', (s: { key_id: string; healthy: boolean; reason: string }) => {
      lastWhy = undefined;
      if (s.key_id !== lastKeyId) log.info({ keyId: s.key_id, previous: lastKeyId }, 'key_id changed');
      if (!s.healthy && lastHealthy !== false) log.warn({ keyring: o.keyring, reason: s.reason }, 'broker reports the keyring unhealthy: Status now fails');
      if (s.healthy && lastHealthy === false) log.info({ keyring: o.keyring }, 'broker reports the keyring healthy again');
      lastKeyId = s.key_id;
      lastHealthy = s.healthy;
    });
    broker.start();
    log.info({ socket: o.socket, brokers: o.brokers, keyring: o.keyring, budgetMs: o.budgetMs, graceMs: o.graceMs, tls: Boolean(o.tls), version: o.version }, 'kms-shim listening');
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

async function readTlsFile(file: string, flag: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (e) {
    throw new Error(`${flag}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)}); fix the path or the file's owner/mode`);
  }
}

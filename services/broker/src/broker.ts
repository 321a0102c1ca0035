/**
 * Assembles one broker replica from a validated config: providers, keyrings, the data-plane service, the
 * gRPC listener, the health/metrics listener and the admin listener; and takes them down in order.
 */
import { promises as fs } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import { deadlineSignal, type KekProvider } from '@kekbroker/core';
import type { BrokerConfig } from '@kekbroker/config';
import type { DefaultKeyCache } from '@kekbroker/cache';
import type { Fleet } from '@kekbroker/ha';
import { Keyring } from '@kekbroker/keyring';
import type { Logger } from '@kekbroker/telemetry';
import { buildAdminApp, hashToken } from './http/admin';
import { buildHealthApp } from './http/health';
import { splitListen } from './listen';
import { BrokerMetrics } from './metrics';
import { createProvider } from './provider-registry';
import { BrokerService } from './service';
import { startGrpcServer, stopGrpcServer } from './grpc/server';
import { IdentityMapper } from './grpc/identity';
import { StreamRegistry } from './grpc/handlers';
import { buildCacheAndFleet } from './ha';

/** How often versions are re-read (catches rotations done elsewhere) and providers probed. */
const REFRESH_MS = 15_000;
/** Faster retry while a keyring has no key_id yet (a KMS unreachable at start). */
const NOT_READY_RETRY_MS = 2_000;

export interface BrokerAddresses {
  grpcPort: number;
  httpPort: number;
  adminPort: number;
}

export class Broker {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly cfg: BrokerConfig,
    private readonly log: Logger,
    private readonly providers: readonly KekProvider[],
    readonly keyrings: ReadonlyMap<string, Keyring>,
    private readonly cache: DefaultKeyCache,
    private readonly fleet: Fleet | undefined,
    private readonly grpcServer: grpc.Server,
    private readonly httpApps: readonly FastifyInstance[],
    readonly addresses: BrokerAddresses,
    private readonly streams: StreamRegistry,
    /** Shared with the health endpoint, which turns not-ready as soon as a drain starts. */
    private readonly state: { shuttingDown: boolean },
  ) {}

  static async start(cfg: BrokerConfig, log: Logger): Promise<Broker> {
    const providers = new Map<string, KekProvider>();
    for (const [id, section] of Object.entries(cfg.providers)) providers.set(id, await createProvider(id, section));
    const keyrings = new Map<string, Keyring>();
    // The stale callback runs only once requests flow, after `metrics` exists.
    const { keyCache: cache, fleet, leadership } = await buildCacheAndFleet(cfg, log, (keyring, cause) => metrics.staleServed.inc({ keyring, cause }));
    const metrics = new BrokerMetrics(cache, fleet, leadership, () => keyrings.values());
    for (const [name, k] of Object.entries(cfg.keyrings)) {
      const keyring = new Keyring({
        name,
        providers: k.providers.map((id) => providers.get(id) as KekProvider),
        minWraps: k.minWraps,
        cache,
        onProviderCall: (e) => {
          metrics.providerCalls.inc({ provider: e.provider, op: e.op, result: e.result });
          metrics.providerDuration.observe({ provider: e.provider, op: e.op }, e.seconds);
        },
      });
      keyring.setMaxListeners(0); // one listener per status stream
      keyring.on('change', () => {
        const s = keyring.status();
        log.info({ keyring: name, keyId: s.keyId, healthy: s.healthy, reason: s.reason }, 'keyring status changed');
      });
      keyrings.set(name, keyring);
    }
    await Promise.all(
      [...keyrings.values()].map((k) =>
        k.refresh(deadlineSignal(10_000)).catch((e: unknown) => log.error({ err: e, keyring: k.name }, 'keyring not ready at start; retrying')),
      ),
    );
    if (fleet) {
      await fleet.start(keyrings.values(), cache);
      log.info({ replica: fleet.replicaId, redis: cfg.redis?.mode, nodes: cfg.redis?.nodes }, 'fleet mode: shared sealed L2, fleet-wide single-flight, leader lease');
    }
    const audit = cfg.log.audit ? log.child({ stream: 'audit' }) : undefined;
    const service = new BrokerService(cfg, keyrings, metrics, audit, log);
    const streams = new StreamRegistry();
    const { server, port: grpcPort } = await startGrpcServer(cfg, { service, identity: new IdentityMapper(cfg), leadership, streams });

    const state = { shuttingDown: false };
    const health = buildHealthApp({ keyrings, registry: metrics.registry, shuttingDown: () => state.shuttingDown, leadership });
    const tokenHashes: Buffer[] = cfg.admin.tokenSha256.map((h) => Buffer.from(h, 'hex'));
    if (cfg.admin.tokenFile) tokenHashes.push(hashToken((await fs.readFile(cfg.admin.tokenFile, 'utf8')).trim()));
    const admin = buildAdminApp({ keyrings, tokenHashes, log, leadership, fleet, invalidateLocal: (inv) => cache.invalidate(inv) });
    const httpPort = await listen(health, cfg.http.listen);
    const adminPort = await listen(admin, cfg.admin.listen);

    const broker = new Broker(cfg, log, [...providers.values()], keyrings, cache, fleet, server, [health, admin], { grpcPort, httpPort, adminPort }, streams, state);
    broker.schedule();
    log.info({ grpc: cfg.grpc.listen, grpcPort, http: cfg.http.listen, admin: cfg.admin.listen, tls: Boolean(cfg.grpc.tls), keyrings: [...keyrings.keys()], providers: Object.fromEntries(Object.entries(cfg.providers).map(([id, p]) => [id, p.type])) }, 'broker started');
    return broker;
  }

  /** Periodic refresh + probe, faster while some keyring has no key_id. */
  private schedule(): void {
    const ready = [...this.keyrings.values()].every((k) => k.keyId !== undefined);
    this.timer = setTimeout(() => {
      void this.tick().finally(() => {
        if (!this.state.shuttingDown) this.schedule();
      });
    }, ready ? REFRESH_MS : NOT_READY_RETRY_MS);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    for (const k of this.keyrings.values()) {
      try {
        await k.refresh(deadlineSignal(5_000));
        await k.probe(deadlineSignal(5_000));
      } catch (e) {
        this.log.warn({ err: e, keyring: k.name }, 'keyring refresh failed');
      }
    }
  }

  async stop(graceMs = 5_000): Promise<void> {
    if (this.state.shuttingDown) return;
    this.state.shuttingDown = true;
    if (this.timer) clearTimeout(this.timer);
    this.log.info('broker stopping: draining gRPC calls');
    this.streams.drain();
    await stopGrpcServer(this.grpcServer, graceMs);
    await Promise.all(this.httpApps.map((a) => a.close()));
    // Give the lease up so another replica takes over at once rather than after the TTL.
    await this.fleet?.stop().catch(() => undefined);
    await Promise.all(this.providers.map((p) => p.close().catch(() => undefined)));
    this.cache.clear();
    this.log.info('broker stopped');
  }
}

async function listen(app: FastifyInstance, address: string): Promise<number> {
  const { host, port } = splitListen(address);
  await app.listen({ host, port });
  const a = app.server.address();
  return typeof a === 'object' && a ? a.port : port;
}

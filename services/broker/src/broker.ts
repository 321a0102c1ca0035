/**
 * Assembles one broker replica from a validated config: providers, keyrings, the data-plane service, the
 * gRPC listener, the health/metrics listener and the admin listener; and takes them down in order.
 */
import { promises as fs } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import { deadlineSignal, type KekProvider } from '@kekbroker/core';
import type { BrokerConfig } from '@kekbroker/config';
import type { DefaultKeyCache, Invalidation } from '@kekbroker/cache';
import { CompositeVersionRefStore, type Fleet } from '@kekbroker/ha';
import { FileVersionRefStore, Keyring } from '@kekbroker/keyring';
import type { ProviderGuard } from '@kekbroker/resilience';
import { FatalError, type Logger } from '@kekbroker/telemetry';
import { DrillRunner } from './drills/drills';
import { FaultHookProvider } from './drills/fault-hook';
import { TOKEN_SYNTAX, buildAdminApp, hashToken } from './http/admin';
import { buildHealthApp } from './http/health';
import { buildTransit, type TransitHandle } from './http/transit';
import { splitListen } from './listen';
import { BrokerMetrics } from './metrics';
import { createProvider } from './provider-registry';
import { buildGuards, onKeyringEvent } from './resilience';
import { BrokerService } from './service';
import { UsageBook } from './usage';
import { KeyringLifecycle } from './lifecycle/lifecycle';
import { LifecycleMetrics } from './lifecycle/metrics';
import { RotationScheduler, Rotations } from './lifecycle/rotations';
import { FileLifecycleStore, FleetLifecycleStore, MemoryLifecycleStore, type LifecycleStore } from './lifecycle/store';
import { startGrpcServer, stopGrpcServer } from './grpc/server';
import { IdentityMapper } from './grpc/identity';
import { StreamRegistry } from './grpc/handlers';
import { buildCacheAndFleet } from './ha';

/** Faster retry while a keyring has no key_id yet (a KMS unreachable at start). */
const NOT_READY_RETRY_MS = 2_000;

export interface BrokerAddresses {
  grpcPort: number;
  httpPort: number;
  adminPort: number;
  /** 0 when transit is disabled. */
  transitPort: number;
}

export class Broker {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly cfg: BrokerConfig,
    private readonly log: Logger,
    private readonly providers: readonly KekProvider[],
    private readonly guards: ReadonlyMap<string, ProviderGuard>,
    readonly keyrings: ReadonlyMap<string, Keyring>,
    private readonly cache: DefaultKeyCache,
    private readonly fleet: Fleet | undefined,
    private readonly grpcServer: grpc.Server,
    private readonly httpApps: readonly FastifyInstance[],
    readonly addresses: BrokerAddresses,
    private readonly streams: StreamRegistry,
    /** Shared with the health endpoint, which turns not-ready as soon as a drain starts. */
    private readonly state: { shuttingDown: boolean },
    private readonly drills: DrillRunner,
    private readonly transit: TransitHandle | undefined,
    private readonly lifecycle: KeyringLifecycle,
    private readonly scheduler: RotationScheduler,
    private readonly usage: UsageBook,
  ) {}

  static async start(cfg: BrokerConfig, log: Logger, version = 'unknown'): Promise<Broker> {
    // Read before anything binds or dials: a missing token file must stop the start, not leave a half broker.
    const tokenHashes: Buffer[] = cfg.admin.tokenSha256.map((h) => Buffer.from(h, 'hex'));
    if (cfg.admin.tokenFile) tokenHashes.push(hashToken(await readToken(cfg.admin.tokenFile)));
    const providers = new Map<string, KekProvider>();
    // eslint-disable-next-line prefer-const -- the guards' listeners and the stale callback need metrics, metrics' collectors need them
    let metrics: BrokerMetrics;
    const guards = buildGuards(cfg, log, () => metrics);
    // Every provider sits behind a drill fault hook: inert (one field read per call) unless a drill runs.
    const faultHooks = new Map<string, FaultHookProvider>();
    for (const [id, section] of Object.entries(cfg.providers)) {
      const provider = await createProvider(id, section);
      // The provider's own retries (its SDK's) spend the same retry and call budgets as the broker's calls.
      const guard = guards.get(id) as ProviderGuard;
      provider.setRetryGate?.(() => guard.mayRetry());
      const hooked = new FaultHookProvider(provider);
      if (hooked.startupNotice) log.warn({ provider: id }, `provider ${id}: ${hooked.startupNotice}`);
      faultHooks.set(id, hooked);
      providers.set(id, hooked);
    }
    const keyrings = new Map<string, Keyring>();
    const { keyCache: cache, fleet, leadership } = await buildCacheAndFleet(cfg, log, (keyring, cause) => metrics.staleServed.inc({ keyring, cause }), version);
    metrics = new BrokerMetrics(cache, fleet, leadership, () => keyrings.values(), () => guards.values(), version);
    // key_id continuity: Redis (shared by the replicas) first, the state file as the fallback.
    const fileRefs = cfg.state.dir ? new FileVersionRefStore(cfg.state.dir) : undefined;
    const versionRefs = fleet && fileRefs ? new CompositeVersionRefStore(fleet.versionRefs, fileRefs) : (fleet?.versionRefs ?? fileRefs);
    if (!versionRefs) log.warn('neither state.dir nor redis is set: a restart while a provider is down cannot keep the keyring\'s key_id, and retired generations are forgotten (see docs/configuration.md)');
    // Rotation lifecycle (first-seen times, rotations, retirements): the fleet's copy in Redis, mirrored in state.dir.
    const fileLifecycle = cfg.state.dir ? new FileLifecycleStore(cfg.state.dir) : undefined;
    const lifecycleStore: LifecycleStore = fleet ? new FleetLifecycleStore(fleet.lifecycle, fileLifecycle) : (fileLifecycle ?? new MemoryLifecycleStore());
    const lifecycle = new KeyringLifecycle(lifecycleStore, keyrings, new Map(Object.entries(cfg.keyrings).map(([n, k]) => [n, k.rotationPeriodSeconds])));
    for (const [name, k] of Object.entries(cfg.keyrings)) {
      const keyring = new Keyring({
        name,
        providers: k.providers.map((id) => providers.get(id) as KekProvider),
        minWraps: k.minWraps,
        cache,
        guards,
        holdDownMs: k.holdDownSeconds * 1000,
        verifyWraps: k.verifyWraps,
        defaultDeadlineMs: cfg.limits.deadlineMs,
        ...(versionRefs ? { versionRefs } : {}),
        retiredReason: (keyId) => {
          const r = lifecycle.retired(name, keyId);
          return r ? `generation ${keyId} of keyring ${name} was retired at ${r.at} by ${r.by}${r.reason ? ` (${r.reason})` : ''}; its envelopes no longer unwrap` : undefined;
        },
        onEvent: (e) => onKeyringEvent(e, log, metrics),
        onProviderCall: (e) => {
          metrics.providerCalls.inc({ provider: e.provider, op: e.op, result: e.result });
          metrics.providerDuration.observe({ provider: e.provider, op: e.op }, e.seconds);
        },
      });
      let wasHealthy: boolean | undefined;
      keyring.on('change', () => {
        const s = keyring.status();
        const fields = { keyring: name, keyId: s.keyId, healthy: s.healthy, reason: s.reason };
        // Turning unhealthy is an error an operator must see at the default level, with the reason.
        if (!s.healthy) log.error(fields, `keyring ${name} is unhealthy: ${s.reason}`);
        else if (wasHealthy === false) log.info(fields, 'keyring recovered');
        else log.info(fields, 'keyring status changed');
        wasHealthy = s.healthy;
        lifecycle.observe(name, s.keyId).catch((e: unknown) => log.warn({ err: e, keyring: name }, 'cannot record the first sighting of a key_id (redis down?); key age is reported from the next success'));
      });
      keyrings.set(name, keyring);
    }
    await Promise.all(
      [...keyrings.values()].map((k) =>
        k.refresh(deadlineSignal(10_000)).catch((e: unknown) => log.error({ err: e, keyring: k.name }, 'keyring not ready at start; retrying')),
      ),
    );
    // Retirements must be known before the first unwrap (Fleet.connect waited for Redis, up to connectTimeoutMs).
    if (fleet && !fleet.ready) log.warn('redis not reachable at start: keyring lifecycle (retired generations) from the state file until it is');
    for (const k of keyrings.values()) {
      await lifecycle.reload(k.name).then(() => lifecycle.observe(k.name, k.keyId)).catch((e: unknown) => log.warn({ err: e, keyring: k.name }, 'cannot read the keyring lifecycle at start (redis down?); retrying at each refresh'));
    }
    if (fleet) {
      // Another replica rotated or retired: re-read the key versions and the lifecycle now, not at the next refresh.
      fleet.onKeyringChange = (name) => {
        const k = keyrings.get(name);
        if (!k) return;
        void k.refresh(deadlineSignal(5_000)).catch(() => undefined);
        void lifecycle.reload(name).catch(() => undefined);
      };
      fleet.onReady = () => {
        for (const k of keyrings.values()) void lifecycle.reload(k.name).then(() => lifecycle.observe(k.name, k.keyId)).catch(() => undefined);
      };
      await fleet.start(keyrings.values(), cache);
      log.info({ replica: fleet.replicaId, redis: cfg.redis?.mode, nodes: cfg.redis?.nodes }, 'fleet mode: shared sealed L2, fleet-wide single-flight, leader lease');
    }
    const audit = cfg.log.audit ? log.child({ stream: 'audit' }) : undefined;
    const usage = new UsageBook(fleet?.usage);
    const service = new BrokerService(cfg, keyrings, metrics, audit, log, usage);
    const quietSeconds = (name: string): number => cfg.keyrings[name]?.retireQuietSeconds ?? 0;
    const lifecycleMetrics = new LifecycleMetrics(metrics.registry, () => keyrings.values(), lifecycle, usage, quietSeconds);
    const publishKeyring = async (keyring: string): Promise<void> => {
      await fleet?.bus.publish({ type: 'keyring', keyring });
    };
    const rotations = new Rotations({
      lifecycle, keyrings, replicaId: leadership.replicaId, epoch: () => leadership.epoch(),
      leaderToken: () => (fleet ? fleet.lease.leaseToken : ''),
      publish: publishKeyring, log,
      onRotated: (keyring, by, ok) => lifecycleMetrics.rotations.inc({ keyring, by, result: ok ? 'ok' : 'failed' }),
    });
    const scheduler = new RotationScheduler(rotations, log);
    const streams = new StreamRegistry();
    const { server, port: grpcPort } = await startGrpcServer(cfg, { service, identity: new IdentityMapper(cfg), leadership, streams });

    const state = { shuttingDown: false };
    const health = buildHealthApp({ keyrings, registry: metrics.registry, shuttingDown: () => state.shuttingDown, leadership });
    const drills = new DrillRunner({ service, keyrings, faultHooks, log, fleet, leadership, leaseHolder: () => fleet?.lease.holder ?? '', onFinished: (r) => lifecycleMetrics.drillFinished(r) });
    // Vault-compatible transit API on its own listener (docs/transit.md); up before /readyz can say ready.
    const transit = cfg.transit.enabled ? await buildTransit(cfg, keyrings, metrics.registry, log, fleet) : undefined;
    // Without Redis an admin invalidation drops transit's data keys here too (with Redis the fleet bus does).
    const invalidateLocal = (inv: Invalidation): number => {
      transit?.dataKeys.invalidate(inv);
      return cache.invalidate(inv);
    };
    const admin = await buildAdminApp({
      keyrings, guards, tokenHashes, log, leadership, fleet, invalidateLocal, drills, usage,
      lifecycle, rotations, retireQuietSeconds: quietSeconds, publishKeyring,
    });
    const transitPort = transit ? await listen(transit.app, cfg.transit.listen) : 0;
    const httpPort = await listen(health, cfg.http.listen);
    const adminPort = await listen(admin, cfg.admin.listen);

    const apps = transit ? [health, admin, transit.app] : [health, admin];
    const broker = new Broker(cfg, log, [...providers.values()], guards, keyrings, cache, fleet, server, apps, { grpcPort, httpPort, adminPort, transitPort }, streams, state, drills, transit, lifecycle, scheduler, usage);
    broker.schedule();
    scheduler.start();
    log.info({ grpc: cfg.grpc.listen, grpcPort, http: cfg.http.listen, transit: transit ? cfg.transit.listen : 'disabled', admin: cfg.admin.listen, tls: Boolean(cfg.grpc.tls), keyrings: [...keyrings.keys()], providers: Object.fromEntries(Object.entries(cfg.providers).map(([id, p]) => [id, p.type])) }, 'broker started');
    return broker;
  }

  /** SIGHUP: take the reloadable parts of a re-read config (today: transit identities and policy file). */
  reload(next: BrokerConfig): void {
    this.transit?.reload(next);
  }

  /** Periodic refresh + probe, faster while some keyring has no key_id. */
  private schedule(): void {
    // Faster while some keyring has no key_id, or is failed over / has a breaker not closed (probes are the
    // half-open trials when there is no traffic, and the failback after hold-down shows up in Status promptly).
    const ready = [...this.keyrings.values()].every((k) => {
      const s = k.status();
      return s.keyId !== undefined && s.actingActive === s.configuredActive;
    }) && [...this.guards.values()].every((g) => g.state === 'closed');
    this.timer = setTimeout(() => {
      void this.tick().finally(() => {
        if (!this.state.shuttingDown) this.schedule();
      });
    }, ready ? this.cfg.health.refreshSeconds * 1000 : NOT_READY_RETRY_MS);
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
      // Retirements and rotations made elsewhere; Redis down is reported by the fleet, the last copy stays.
      await this.lifecycle.reload(k.name).catch(() => undefined);
    }
  }

  async stop(graceMs = 5_000): Promise<void> {
    if (this.state.shuttingDown) return;
    this.state.shuttingDown = true;
    if (this.timer) clearTimeout(this.timer);
    this.log.info('broker stopping: draining gRPC calls');
    await this.drills.stopAll();
    await this.scheduler.stop();
    this.usage.stop();
    await this.usage.flush().catch(() => undefined);
    this.streams.drain();
    await stopGrpcServer(this.grpcServer, graceMs);
    await Promise.all(this.httpApps.map((a) => a.close()));
    // Give the lease up so another replica takes over at once rather than after the TTL.
    await this.fleet?.stop().catch(() => undefined);
    await Promise.all(this.providers.map((p) => p.close().catch(() => undefined)));
    for (const g of this.guards.values()) g.shutdown();
    this.cache.clear();
    this.transit?.dataKeys.clear();
    this.log.info('broker stopped');
  }
}

async function listen(app: FastifyInstance, address: string): Promise<number> {
  const { host, port } = splitListen(address);
  await app.listen({ host, port });
  const a = app.server.address();
  return typeof a === 'object' && a ? a.port : port;
}

async function readToken(file: string): Promise<string> {
  let token: string;
  try {
    // A trailing newline (echo > file) is not part of the token; anything else outside token syntax is refused.
    token = (await fs.readFile(file, 'utf8')).replace(/\r?\n$/, '');
  } catch (e) {
    throw new FatalError(`admin.tokenFile: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)}); create it (e.g. openssl rand -base64 24 > ${file}; chmod 0600 ${file}) or fix the path`);
  }
  if (!token) throw new FatalError(`admin.tokenFile: ${file} is empty; write one bearer token into it`);
  if (!TOKEN_SYNTAX.test(token)) throw new FatalError(`admin.tokenFile: the token in ${file} must be one word of letters, digits and -._~+/ (RFC 6750), with no spaces; generate one with: openssl rand -hex 32 > ${file}`);
  return token;
}

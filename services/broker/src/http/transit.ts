/**
 * Wires the Vault-compatible transit API (@kekbroker/transit) into a broker replica: its own listener
 * (transit.listen), the broker's keyrings, tenants and metrics registry. `reload` swaps identities and
 * re-reads the policy file (SIGHUP).
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { BrokerConfig } from '@kekbroker/config';
import type { Fleet } from '@kekbroker/ha';
import type { Keyring } from '@kekbroker/keyring';
import type { Logger, Registry } from '@kekbroker/telemetry';
import {
  Authenticator, DataKeyCache, PolicyStore, TransitEngine, TransitMetrics, buildTransitApp, localTokenBuckets,
  type IdentityConfig, type KeyPolicy, type TenantLimiter, type TransitKey,
} from '@kekbroker/transit';

export interface TransitHandle {
  app: FastifyInstance;
  dataKeys: DataKeyCache;
  reload(cfg: BrokerConfig): void;
}

/** With `fleet` (Redis configured), data keys are shared by the replicas, sealed in Redis (docs/transit.md). */
export async function buildTransit(cfg: BrokerConfig, keyrings: ReadonlyMap<string, Keyring>, registry: Registry, log: Logger, fleet?: Fleet, limiter?: TenantLimiter): Promise<TransitHandle> {
  const t = cfg.transit;
  const keys = new Map<string, TransitKey>();
  const defaults = new Map<string, KeyPolicy>();
  for (const [name, k] of Object.entries(t.keys)) {
    const keyring = keyrings.get(k.keyring) as Keyring;
    keys.set(name, { name, keyring, versionProvider: k.versionProvider ?? (cfg.keyrings[k.keyring]?.providers[0] as string), derived: k.derived });
    defaults.set(name, { minDecryptionVersion: k.minDecryptionVersion, minEncryptionVersion: k.minEncryptionVersion, deletionAllowed: k.deletionAllowed });
  }
  const transitKeyrings = [...new Set([...keys.values()].map((k) => k.keyring.name))];
  const metrics = new TransitMetrics(registry, () => transitKeyrings.map((k) => [k, fleet?.transitDataKeys.available(k) ?? false]));
  let warned = false;
  const dataKeys = new DataKeyCache(
    { maxAgeMs: t.dataKeys.maxAgeSeconds * 1000, maxMessages: t.dataKeys.maxMessages, maxBytes: t.dataKeys.maxBytes, maxEntries: t.dataKeys.maxEntries },
    (key, source, why) => {
      if (source === 'fleet') return metrics.dataKeysFromFleet.inc({ key });
      metrics.dataKeysCreated.inc({ key });
      if (source !== 'local') return;
      metrics.dataKeysLocalOnly.inc({ key, reason: why ?? 'unknown' });
      // Loud once per process when Redis is configured but cannot be used; every later one is in the metric.
      if (fleet && !warned) log.warn({ transitKey: key, reason: why }, 'transit data key kept local to this replica: other replicas will wrap their own (kekbroker_transit_data_keys_local_only_total)');
      warned ||= Boolean(fleet);
    },
    Date.now,
    fleet?.transitDataKeys,
  );
  fleet?.onInvalidate((inv) => dataKeys.invalidate(inv));
  const policy = new PolicyStore(defaults, t.policyFile);
  const engine = new TransitEngine(keys, policy, dataKeys, t.maxPlaintextBytes);
  const auth = new Authenticator(t.identities as IdentityConfig[]);
  let tenants = tenantKeyrings(cfg);
  const app = await buildTransitApp({
    mount: t.mount, engine, auth,
    limiter: limiter ?? localTokenBuckets(
      { ratePerSecond: t.rateLimit.requestsPerSecond, burst: t.rateLimit.burst },
      Object.fromEntries(Object.entries(t.rateLimit.tenants).map(([n, r]) => [n, { ratePerSecond: r.requestsPerSecond, burst: r.burst }])),
    ),
    tenantKeyrings: (tenant) => tenants.get(tenant),
    maxPlaintextBytes: t.maxPlaintextBytes, maxBatchItems: t.maxBatchItems, bodyLimitBytes: t.bodyLimitBytes, deadlineMs: cfg.limits.deadlineMs,
    log, audit: cfg.log.audit ? log.child({ stream: 'audit' }) : undefined, metrics,
    https: t.tls
      ? {
          cert: readFileSync(t.tls.certFile), key: readFileSync(t.tls.keyFile),
          ...(t.tls.clientCaFile ? { ca: readFileSync(t.tls.clientCaFile), requestCert: true, rejectUnauthorized: false } : {}),
        }
      : undefined,
  });
  return {
    app,
    dataKeys,
    reload(next) {
      auth.replace(next.transit.identities as IdentityConfig[]);
      tenants = tenantKeyrings(next);
      policy.reload();
      log.info({ identities: next.transit.identities.length }, 'transit identities and policy file reloaded');
    },
  };
}

function tenantKeyrings(cfg: BrokerConfig): Map<string, ReadonlySet<string>> {
  return new Map(Object.entries(cfg.tenants).map(([name, t]) => [name, new Set(t.keyrings)]));
}

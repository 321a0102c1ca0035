/**
 * HA wiring for one replica: the KeyCache (L1, plus the Redis fleet when `redis` is configured) and what the
 * replica reports about leadership. Without Redis a lone replica is its own leader (epoch 0) on L1 alone.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { BrokerConfig } from '@kekbroker/config';
import { DefaultKeyCache, L1Cache } from '@kekbroker/cache';
import { Fleet } from '@kekbroker/ha';
import type { Logger } from '@kekbroker/telemetry';
import type { Leadership } from './grpc/handlers';

export interface CacheAndFleet {
  keyCache: DefaultKeyCache;
  fleet: Fleet | undefined;
  leadership: Leadership;
}

export async function buildCacheAndFleet(cfg: BrokerConfig, log: Logger, onStale: (keyring: string, cause: string) => void, version = 'unknown'): Promise<CacheAndFleet> {
  const ttlMs = cfg.cache.ttlSeconds * 1000;
  const maxStaleMs = cfg.cache.maxStaleSeconds * 1000;
  const l1 = new L1Cache({ maxEntries: cfg.cache.maxEntries, maxBytes: cfg.cache.maxBytes, ttlMs, maxStaleMs, perTenantMaxFraction: cfg.cache.perTenantMaxFraction });
  const fleet = cfg.redis ? await Fleet.connect(cfg.redis, { ...cfg.ha, version }, ttlMs, log) : undefined;
  const keyCache = new DefaultKeyCache({
    l1,
    maxStaleMs,
    shared: fleet?.cache,
    onStale: (meta, cause) => {
      onStale(meta.keyring, cause);
      log.warn({ keyring: meta.keyring, tenant: meta.tenant, generation: meta.generation, cause }, 'served a cached key past its TTL because the KMS failed (cache.maxStaleSeconds)');
    },
  });
  const events = new EventEmitter();
  fleet?.lease.on('change', (s) => events.emit('change', s));
  const leadership: Leadership = fleet
    ? {
      isLeader: () => fleet.lease.isLeader,
      epoch: () => fleet.lease.epoch,
      replicaId: fleet.replicaId,
      cacheShared: (keyring) => fleet.cache.available(keyring),
      events,
    }
    : { isLeader: () => true, epoch: () => 0, replicaId: cfg.ha.replicaId ?? `${os.hostname()}-${process.pid}`, cacheShared: () => false, events };
  return { keyCache, fleet, leadership };
}

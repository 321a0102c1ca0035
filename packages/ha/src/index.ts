export { Fleet, type HaConfig, type FleetLog } from './fleet';
export { FleetCache } from './fleet-cache';
export { FleetBus } from './bus';
export { LeaderLease, type LeaderState } from './leader-lease';
export { RedisKeys } from './keys';
export { createRedisClient, redisPassword, RedisHealth, REDIS_BACKOFF_MS, type RedisClient, type RedisConfig } from './redis-client';
export { SealingKeys, type SealingKeyring } from './sealing-keys';
export { sealEntry, openEntry, entryHeader } from './sealed-entry';
export { RedisVersionRefStore, CompositeVersionRefStore, type VersionRefStore } from './version-ref-store';

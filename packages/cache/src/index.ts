export { L1Cache, ENTRY_OVERHEAD_BYTES, type L1Options } from './l1';
export { DefaultKeyCache, CACHE_SEALING_TENANT, type KeyCache, type KeyCacheEntryMeta, type KeyCacheOptions, type LoadFn, type SharedCache, type Invalidation } from './key-cache';
export { SingleFlight, keyMaterialFlight } from './single-flight';

export { buildTransitApp, type TransitAppOptions } from './app';
export { Authenticator, OPERATIONS, type IdentityConfig, type Operation } from './auth';
export { parseCiphertext, CiphertextError } from './ciphertext';
export { DataKeyCache, DEFAULT_LIMITS, versionOfEnvelope, type DataKeyLimits, type DataKeySource, type SharedDataKeyStore } from './data-keys';
export { TransitEngine, TransitError, type TransitKey } from './engine';
export { localTokenBuckets, type TenantLimiter } from './limiter';
export { TransitMetrics } from './metrics';
export { PolicyStore, type KeyPolicy } from './policy';
export { VERSION_PROVIDER_TYPES, versionOfRef, latestVersion } from './versions';

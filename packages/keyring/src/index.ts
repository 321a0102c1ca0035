export { Keyring, cacheKey, type KeyringOptions, type KeyringStatus, type UnwrapResult, type WrapResult } from './keyring';
export { HealthBook, type ProviderHealth } from './health';
export { FileVersionRefStore, MemoryVersionRefStore, type VersionRefStore } from './version-ref-store';

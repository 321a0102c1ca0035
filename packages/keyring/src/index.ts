export { Keyring, cacheKey, type KeyringEvent, type KeyringOptions, type KeyringStatus, type UnwrapResult, type WrapResult } from './keyring';
export { type ProviderHealth } from './health';
export { type ActingChange } from './acting-active';
export { FileVersionRefStore, MemoryVersionRefStore, type VersionRefStore } from './version-ref-store';

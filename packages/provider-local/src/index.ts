export { LocalProvider, type LocalProviderOptions } from './provider';
export { KEYSTORE_FORMAT, parseKeystore } from './keystore';
export { configSchema, fromConfig, type LocalProviderConfig } from './config';

export { LocalProvider, type LocalProviderOptions } from './provider';
export { KEYSTORE_FORMAT, parseKeystore } from './keystore';

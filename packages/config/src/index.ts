export { ConfigSchema, type BrokerConfig, type ProviderSection } from './schema';
export { ConfigError, deepFreeze, isLoopback, loadConfig, parseConfigText, validateConfig, type ProviderSchemas } from './load';

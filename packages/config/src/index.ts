export { BROKER_PROVIDER_KEYS, ConfigSchema, type BrokerConfig, type ProviderSection } from './schema';
export { ConfigError, deepFreeze, isLoopback, loadConfig, parseConfigText, providerOwnSection, validateConfig, type ProviderSchemas } from './load';

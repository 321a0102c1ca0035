export { Broker, type BrokerAddresses } from './broker';
export { BrokerService } from './service';
export { providerSchemas, PROVIDER_TYPES } from './provider-registry';

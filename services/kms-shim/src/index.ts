export { Shim, type ShimOptions } from './shim';
export { KmsV2Service } from './kms-service';
export { BrokerClient } from './broker-client';
export { BrokerPool } from './broker-pool';
export * from './validate';

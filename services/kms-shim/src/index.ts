export { Shim, type ShimOptions } from './shim';
export { KmsV2Service } from './kms-service';
export { BrokerClient } from './broker-client';
export * from './validate';

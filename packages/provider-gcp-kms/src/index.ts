export { GcpKmsProvider, type GcpKmsProviderOptions } from './provider';
export { configSchema, fromConfig, DEFAULTS as GCP_KMS_DEFAULTS, type GcpKmsConfig, type GcpCredentialsConfig } from './config';
export { classifyGcpError, retryAfterMs, type ClassifyContext as GcpClassifyContext, type GcpOperation } from './classify-error';
export { createSdkClient, type SdkClientOptions as GcpSdkClientOptions } from './sdk-client';
export { formatVersionRef, parseVersionRef, parseVersionName, type ParsedVersion } from './version-ref';
export { crc32c } from '@aws-crypto/crc32c';
export type * from './client';

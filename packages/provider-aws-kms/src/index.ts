export { AwsKmsProvider, type AwsKmsProviderOptions } from './provider';
export { configSchema, fromConfig, DEFAULTS as AWS_KMS_DEFAULTS, type AwsKmsConfig, type AwsCredentialsConfig } from './config';
export { classifyAwsError, type ClassifyContext, type AwsOp } from './classify-error';
export { createSdkKmsApi, type SdkClientOptions } from './sdk-client';
export { formatVersionRef, parseVersionRef, type VersionRef } from './version-ref';
export type { KmsApi, KmsKeyInfo } from './client';

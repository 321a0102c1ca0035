export { startAwsKmsEmulator, type AwsKmsEmulator, type AwsKmsEmulatorOptions, type AwsKmsInjectedError } from './server';
export { KMS_ERROR_STATUS as AWS_KMS_ERROR_STATUS } from './errors';

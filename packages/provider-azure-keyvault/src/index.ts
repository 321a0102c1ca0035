export { AzureKeyVaultProvider, type AzureKeyVaultProviderOptions } from './provider';
export { configSchema, fromConfig, type AzureKeyVaultConfig } from './config';
export { createSdkClient, createCredential, DEFAULT_RETRY, type SdkClientOptions, type RetrySettings } from './sdk-client';
export { classifyAzureError, type ErrorContext } from './classify-error';
export type { CredentialSpec, KeyVaultClient, KeyVersionCrypto, TokenCredentialLike, VaultKey, WrapAlgorithm } from './client';

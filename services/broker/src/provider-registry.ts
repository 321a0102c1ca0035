/**
 * Provider types the broker can build from config. Each provider package owns its config schema and its
 * factory; the broker only maps `type` to them.
 */
import type { KekProvider } from '@kekbroker/core';
import { providerOwnSection, type ProviderSection } from '@kekbroker/config';
import * as awsKms from '@kekbroker/provider-aws-kms';
import * as azureKeyVault from '@kekbroker/provider-azure-keyvault';
import * as gcpKms from '@kekbroker/provider-gcp-kms';
import * as local from '@kekbroker/provider-local';

interface ProviderModule {
  configSchema: object;
  fromConfig(id: string, cfg: never): KekProvider | Promise<KekProvider>;
}

export const PROVIDER_TYPES: Readonly<Record<string, ProviderModule>> = {
  local,
  'aws-kms': awsKms,
  'gcp-kms': gcpKms,
  'azure-keyvault': azureKeyVault,
};

export function providerSchemas(): Record<string, object> {
  return Object.fromEntries(Object.entries(PROVIDER_TYPES).map(([t, m]) => [t, m.configSchema]));
}

export async function createProvider(id: string, section: ProviderSection): Promise<KekProvider> {
  const m = Object.hasOwn(PROVIDER_TYPES, section.type) ? PROVIDER_TYPES[section.type] : undefined;
  if (!m) throw new Error(`unknown provider type ${section.type}`);
  return await m.fromConfig(id, providerOwnSection(section) as never);
}

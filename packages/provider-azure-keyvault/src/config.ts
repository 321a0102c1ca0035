/**
 * The `azure-keyvault` provider section of the broker config, as JSON Schema (validated by the config
 * package with ajv, defaults applied), and the factory that turns a validated section into a provider.
 *
 *   providers:
 *     azure-prod:
 *       type: azure-keyvault
 *       vaultUrl: https://contoso-kek.vault.azure.net
 *       keyName: kekbroker
 *       credential: { type: workload-identity }
 */
import { promises as fs } from 'node:fs';
import { KekError, type KekProvider } from '@kekbroker/core';
import type { CredentialSpec } from './client';
import { AzureKeyVaultProvider } from './provider';
import { DEFAULT_RETRY, createCredential, createSdkClient } from './sdk-client';

export interface AzureKeyVaultConfig {
  type: 'azure-keyvault';
  vaultUrl: string;
  keyName: string;
  credential: CredentialSpec;
  tlsCaFile?: string;
  disableChallengeResourceVerification?: boolean;
  timeoutMs?: number;
  refreshIntervalMs?: number;
  retry?: { maxRetries?: number; retryDelayMs?: number; maxRetryDelayMs?: number };
}

const guid = { type: 'string', pattern: '^[0-9a-fA-F-]{36}$' } as const;

/** The fields allowed (and required) for one credential type. */
function credentialBranch(type: string, required: string[], properties: Record<string, object>): object {
  const secret = type === 'client-secret' ? { oneOf: [{ required: ['clientSecretEnv'] }, { required: ['clientSecretFile'] }] } : {};
  return {
    if: { properties: { type: { const: type } } },
    then: { additionalProperties: false, required, properties: { type: { const: type }, ...properties }, ...secret },
  };
}

export const configSchema = {
  type: 'object',
  description: 'Azure Key Vault or Managed HSM key, used through wrapKey/unwrapKey (RSA-OAEP-256 or A256KW).',
  additionalProperties: false,
  required: ['type', 'vaultUrl', 'keyName', 'credential'],
  properties: {
    type: { const: 'azure-keyvault' },
    vaultUrl: {
      type: 'string',
      pattern: '^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$',
      description: 'https://<vault>.vault.azure.net or https://<hsm>.managedhsm.azure.net (sovereign clouds: their vault domain)',
    },
    keyName: { type: 'string', pattern: '^[0-9a-zA-Z-]{1,127}$', description: 'key name; RSA (RSA-HSM) or, in Managed HSM, oct-HSM 256' },
    credential: {
      type: 'object',
      description: 'how the broker obtains an Entra ID token; secrets are referenced (env var or file), never inline',
      required: ['type'],
      properties: {
        type: { enum: ['workload-identity', 'managed-identity', 'client-secret', 'default', 'emulator'], description: 'credential source' },
      },
      // One branch per type (if/then rather than oneOf, so that a mistake yields one error, not one per branch).
      allOf: [
        credentialBranch('workload-identity', [], {
          tenantId: { ...guid, description: 'default: $AZURE_TENANT_ID (set by the AKS workload-identity webhook)' },
          clientId: { ...guid, description: 'default: $AZURE_CLIENT_ID' },
          tokenFilePath: { type: 'string', description: 'federated token file (default: $AZURE_FEDERATED_TOKEN_FILE)' },
        }),
        credentialBranch('managed-identity', [], {
          clientId: { ...guid, description: 'user-assigned identity client id (system-assigned when absent)' },
          resourceId: { type: 'string', description: 'user-assigned identity ARM resource id (instead of clientId)' },
        }),
        credentialBranch('client-secret', ['tenantId', 'clientId'], {
            tenantId: guid,
            clientId: guid,
            clientSecretEnv: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'name of the env var holding the secret' },
            clientSecretFile: { type: 'string', description: 'file holding the secret (one trailing newline ignored)' },
            authorityHost: { type: 'string', pattern: '^https://', description: 'Entra ID authority for sovereign clouds, e.g. https://login.microsoftonline.us' },
            disableInstanceDiscovery: { type: 'boolean', description: 'skip MSAL instance discovery (private authorities only)' },
          }),
        credentialBranch('default', [], {
          managedIdentityClientId: guid,
          tenantId: guid,
        }),
        // A fake token for the kekbroker emulator; fromConfig refuses it for a non-loopback vaultUrl.
        credentialBranch('emulator', [], {}),
      ],
    },
    tlsCaFile: { type: 'string', description: 'PEM CA bundle to trust INSTEAD of the system roots (emulators, private endpoints behind a private CA)' },
    disableChallengeResourceVerification: {
      type: 'boolean',
      default: false,
      description: 'emulators only: accept an auth challenge whose resource does not match the vault host',
    },
    timeoutMs: { type: 'integer', minimum: 100, maximum: 30_000, default: 2000, description: 'bound on one call including retries' },
    refreshIntervalMs: {
      type: 'integer',
      minimum: 0,
      maximum: 86_400_000,
      default: 60_000,
      description: 're-read the key version and attributes this often in the background (0: only on rotate/probe)',
    },
    retry: {
      type: 'object',
      additionalProperties: false,
      description: 'SDK retries for 408/5xx and connection errors; 429 is never retried (the caller gets throttled + retry-after)',
      properties: {
        maxRetries: { type: 'integer', minimum: 0, maximum: 5, default: DEFAULT_RETRY.maxRetries },
        retryDelayMs: { type: 'integer', minimum: 10, maximum: 5000, default: DEFAULT_RETRY.retryDelayMs },
        maxRetryDelayMs: { type: 'integer', minimum: 10, maximum: 10_000, default: DEFAULT_RETRY.maxRetryDelayMs },
      },
    },
  },
} as const;

/** Build the provider from a validated config section. Reads the secret and CA files now, so errors show at start. */
export async function fromConfig(id: string, cfg: AzureKeyVaultConfig): Promise<KekProvider> {
  if (cfg.credential.type === 'emulator' && !isLoopbackUrl(cfg.vaultUrl)) {
    throw new KekError('invalid-input', `provider ${id}: credential type "emulator" only works with a loopback vaultUrl (the kekbroker emulator), not ${cfg.vaultUrl}`);
  }
  const caPem = cfg.tlsCaFile !== undefined ? await readRequired(cfg.tlsCaFile, 'tlsCaFile') : undefined;
  let secret: string | undefined;
  if (cfg.credential.type === 'client-secret') {
    const c = cfg.credential;
    if (c.clientSecretEnv !== undefined) {
      secret = process.env[c.clientSecretEnv];
      if (!secret) throw new KekError('invalid-input', `provider ${id}: env var ${c.clientSecretEnv} (credential.clientSecretEnv) is not set`);
    } else if (c.clientSecretFile !== undefined) {
      secret = (await readRequired(c.clientSecretFile, 'credential.clientSecretFile')).replace(/\r?\n$/, '');
    }
    if (!secret) throw new KekError('invalid-input', `provider ${id}: client-secret credential needs clientSecretEnv or clientSecretFile`);
  }
  const retry = { ...DEFAULT_RETRY, ...cfg.retry };
  const client = createSdkClient({
    vaultUrl: cfg.vaultUrl,
    credential: createCredential(cfg.credential, secret, retry),
    ...(caPem !== undefined ? { caPem } : {}),
    disableChallengeResourceVerification: cfg.disableChallengeResourceVerification === true,
    retry,
  });
  return new AzureKeyVaultProvider({
    id,
    vaultUrl: cfg.vaultUrl,
    keyName: cfg.keyName,
    client,
    ...(cfg.timeoutMs !== undefined ? { timeoutMs: cfg.timeoutMs } : {}),
    ...(cfg.refreshIntervalMs !== undefined ? { refreshIntervalMs: cfg.refreshIntervalMs } : {}),
  });

  async function readRequired(file: string, what: string): Promise<string> {
    try {
      return await fs.readFile(file, 'utf8');
    } catch (e) {
      throw new KekError('invalid-input', `provider ${id}: cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
}

function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  } catch {
    return false;
  }
}

/**
 * The `aws-kms` provider's config section, e.g.
 *
 *   providers:
 *     aws-prod:
 *       type: aws-kms
 *       region: eu-west-1
 *       keyId: alias/kekbroker-prod
 *
 * `configSchema` is plain JSON Schema (draft 2020-12 compatible, no custom keywords) for the config
 * package to compose; `fromConfig` builds the provider from a section that passed it.
 */
import { isValidName, needs } from '@kekbroker/core';
import { envCredentials, fileCredentials, type AwsCredentialsConfig, type CredentialsProvider } from './credentials';
import { AwsKmsProvider } from './provider';
import { createSdkKmsApi, type RetryHolder } from './sdk-client';

export type { AwsCredentialsConfig } from './credentials';

export interface AwsKmsConfig {
  type: 'aws-kms';
  region: string;
  keyId: string;
  endpoint?: string;
  credentials?: AwsCredentialsConfig;
  maxAttempts?: number;
  requestTimeoutMs?: number;
  connectionTimeoutMs?: number;
  callTimeoutMs?: number;
  rotationTimeoutMs?: number;
}

export const DEFAULTS = {
  maxAttempts: 2,
  requestTimeoutMs: 1000,
  connectionTimeoutMs: 500,
  callTimeoutMs: 5000,
  rotationTimeoutMs: 60_000,
} as const;

const REGION = '^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$';
const ENV_NAME = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } as const;

export const configSchema = {
  type: 'object',
  title: 'AWS KMS provider',
  description: 'Wraps keys with AWS KMS Encrypt/Decrypt under one symmetric KMS key, bound to tenant, keyring and envelope version through the EncryptionContext.',
  additionalProperties: false,
  required: ['type', 'region', 'keyId'],
  properties: {
    type: { const: 'aws-kms', description: 'Selects this provider.' },
    region: { type: 'string', pattern: REGION, description: 'AWS Region of the key, e.g. eu-west-1. Required: the SDK never guesses it (no metadata lookup).' },
    keyId: {
      type: 'string',
      minLength: 1,
      maxLength: 2048,
      description: 'The KMS key: key id, key ARN, alias name (alias/...) or alias ARN. It must be a symmetric encryption key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT). An alias is resolved at start and at each probe.',
    },
    endpoint: {
      type: 'string',
      pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*)?$',
      description: 'Override the KMS endpoint: a VPC interface endpoint, a FIPS endpoint, or the emulator (http://127.0.0.1:PORT). The regional AWS endpoint when absent.',
    },
    credentials: {
      description: 'Where AWS credentials come from. Default: the SDK default chain (env, SSO, shared files, credential_process, IRSA web identity, EKS Pod Identity / ECS container credentials, EC2 instance profile). Secrets are referenced, never written here.',
      oneOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['source'],
          properties: {
            source: { const: 'default' },
            profile: { type: 'string', minLength: 1, description: 'Shared config profile for the default chain.' },
          },
        },
        {
          type: 'object',
          additionalProperties: false,
          required: ['source', 'accessKeyIdEnv', 'secretAccessKeyEnv'],
          properties: {
            source: { const: 'env' },
            accessKeyIdEnv: { ...ENV_NAME, description: 'Name of the environment variable holding the access key id.' },
            secretAccessKeyEnv: { ...ENV_NAME, description: 'Name of the environment variable holding the secret access key.' },
            sessionTokenEnv: { ...ENV_NAME, description: 'Name of the environment variable holding a session token, for temporary credentials.' },
          },
        },
        {
          type: 'object',
          additionalProperties: false,
          required: ['source', 'file'],
          properties: {
            source: { const: 'file' },
            file: { type: 'string', minLength: 1, description: 'JSON file {"accessKeyId","secretAccessKey","sessionToken"?}, e.g. a mounted Secret; re-read about every 10 minutes.' },
          },
        },
      ],
    },
    maxAttempts: { type: 'integer', minimum: 1, maximum: 5, default: DEFAULTS.maxAttempts, description: 'SDK attempts per call, the first included. Keep attempts × requestTimeoutMs within the callers\' deadline (kube-apiserver allows 3 s for the whole chain).' },
    requestTimeoutMs: { type: 'integer', minimum: 50, maximum: 60_000, default: DEFAULTS.requestTimeoutMs, description: 'Per attempt: longest wait for a KMS answer.' },
    connectionTimeoutMs: { type: 'integer', minimum: 10, maximum: 60_000, default: DEFAULTS.connectionTimeoutMs, description: 'Per attempt: longest wait for a connection to the endpoint.' },
    callTimeoutMs: { type: 'integer', minimum: 100, maximum: 120_000, default: DEFAULTS.callTimeoutMs, description: 'Upper bound for one wrap/unwrap/probe including retries, when the caller gives a looser deadline.' },
    rotationTimeoutMs: { type: 'integer', minimum: 1000, maximum: 600_000, default: DEFAULTS.rotationTimeoutMs, description: 'Upper bound for rotate(), which waits until KMS reports the new key material.' },
  },
} as const;

function credentialsFrom(id: string, c: AwsCredentialsConfig | undefined): { credentials?: CredentialsProvider; profile?: string } {
  if (c === undefined || c.source === 'default') return c?.profile !== undefined ? { profile: c.profile } : {};
  if (c.source === 'env') return { credentials: envCredentials(id, c) };
  if (c.source === 'file') return { credentials: fileCredentials(id, c.file) };
  throw new Error('unreachable');
}

const intIn = (v: number | undefined, min: number, max: number, fallback: number, what: string): number => {
  if (v === undefined) return fallback;
  needs(Number.isInteger(v) && v >= min && v <= max, `${what} must be an integer in ${min}..${max}`);
  return v;
};

/** Build the provider from a validated config section. Throws `invalid-input` naming the bad field. */
export function fromConfig(id: string, cfg: AwsKmsConfig): AwsKmsProvider {
  const at = `providers.${id}`;
  needs(isValidName(id), `provider id ${id} must be a DNS label (a-z, 0-9, -; 1..63 characters)`);
  needs(cfg.type === 'aws-kms', `${at}.type must be aws-kms`);
  needs(typeof cfg.region === 'string' && new RegExp(REGION).test(cfg.region), `${at}.region must be an AWS Region such as eu-west-1`);
  needs(typeof cfg.keyId === 'string' && cfg.keyId.trim() !== '', `${at}.keyId must name a KMS key (id, ARN, alias/name or alias ARN)`);
  if (cfg.endpoint !== undefined) needs(new RegExp(configSchema.properties.endpoint.pattern).test(cfg.endpoint), `${at}.endpoint must be an http(s) URL`);
  const maxAttempts = intIn(cfg.maxAttempts, 1, 5, DEFAULTS.maxAttempts, `${at}.maxAttempts`);
  const requestTimeoutMs = intIn(cfg.requestTimeoutMs, 50, 60_000, DEFAULTS.requestTimeoutMs, `${at}.requestTimeoutMs`);
  const connectionTimeoutMs = intIn(cfg.connectionTimeoutMs, 10, 60_000, DEFAULTS.connectionTimeoutMs, `${at}.connectionTimeoutMs`);
  const callTimeoutMs = intIn(cfg.callTimeoutMs, 100, 120_000, DEFAULTS.callTimeoutMs, `${at}.callTimeoutMs`);
  const rotationTimeoutMs = intIn(cfg.rotationTimeoutMs, 1000, 600_000, DEFAULTS.rotationTimeoutMs, `${at}.rotationTimeoutMs`);
  const endpoint = cfg.endpoint !== undefined ? { endpoint: cfg.endpoint } : {};
  // Credentials last: they read the environment, and the other fields' errors are cheaper to report first.
  const retry: RetryHolder = {};
  const api = createSdkKmsApi({ region: cfg.region, ...endpoint, ...credentialsFrom(id, cfg.credentials), maxAttempts, requestTimeoutMs, connectionTimeoutMs, retry });
  return new AwsKmsProvider({ id, region: cfg.region, keyId: cfg.keyId, ...endpoint, callTimeoutMs, rotationTimeoutMs }, api, retry);
}

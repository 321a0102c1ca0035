/**
 * The `gcp-kms` provider's config section, e.g.
 *
 *   providers:
 *     gcp-prod:
 *       type: gcp-kms
 *       keyName: projects/acme-prod/locations/europe-west1/keyRings/kekbroker/cryptoKeys/kek
 *
 * `configSchema` is plain JSON Schema (draft 2020-12 compatible, no custom keywords) for the config
 * package to compose; `fromConfig` builds the provider from a section that passed it (and re-checks what
 * it relies on, for programmatic callers). No network happens here: the key is first read on first use.
 */
import { isValidName, needs } from '@kekbroker/core';
import { GcpKmsProvider } from './provider';
import { createSdkClient, splitEndpoint } from './sdk-client';
import { KEY_NAME } from './version-ref';

export type GcpCredentialsConfig = { source: 'default' } | { source: 'file'; file: string };

export interface GcpKmsConfig {
  type: 'gcp-kms';
  keyName: string;
  endpoint?: string;
  insecureLoopback?: boolean;
  credentials?: GcpCredentialsConfig;
  maxAttempts?: number;
  requestTimeoutMs?: number;
  callTimeoutMs?: number;
  rotationTimeoutMs?: number;
}

export const DEFAULTS = {
  maxAttempts: 3,
  requestTimeoutMs: 2000,
  callTimeoutMs: 5000,
  rotationTimeoutMs: 60_000,
} as const;

const ENDPOINT = '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$';
const LOOPBACK = /^(127\.[0-9.]+|localhost|\[::1\]|::1)$/;

export const configSchema = {
  type: 'object',
  title: 'Google Cloud KMS provider',
  description:
    'Wraps keys with Cloud KMS Encrypt/Decrypt (gRPC) under one symmetric ENCRYPT_DECRYPT CryptoKey, bound to tenant, keyring and envelope version through additional authenticated data, with CRC32C integrity checks both ways.',
  additionalProperties: false,
  required: ['type', 'keyName'],
  properties: {
    type: { const: 'gcp-kms', description: 'Selects this provider.' },
    keyName: {
      type: 'string',
      pattern: KEY_NAME.source,
      maxLength: 512,
      description: 'Full CryptoKey resource name: projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY. Purpose ENCRYPT_DECRYPT, algorithm GOOGLE_SYMMETRIC_ENCRYPTION, SOFTWARE or HSM.',
    },
    endpoint: {
      type: 'string',
      pattern: ENDPOINT,
      description: 'host:port of the Cloud KMS gRPC API: a Private Service Connect endpoint, or the emulator (127.0.0.1:PORT). cloudkms.googleapis.com:443 when absent.',
    },
    insecureLoopback: {
      type: 'boolean',
      default: false,
      description: 'Emulator only: plaintext gRPC and no credentials. Refused unless endpoint is a loopback address.',
    },
    credentials: {
      description:
        'Where Google credentials come from. Default: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, then gcloud user credentials, then the metadata server, which is GKE workload identity). Secrets are referenced, never written here.',
      oneOf: [
        { type: 'object', additionalProperties: false, required: ['source'], properties: { source: { const: 'default' } } },
        {
          type: 'object',
          additionalProperties: false,
          required: ['source', 'file'],
          properties: {
            source: { const: 'file' },
            file: { type: 'string', minLength: 1, description: 'Path of a service account key or a workload identity federation (external_account) JSON file, e.g. a mounted Secret.' },
          },
        },
      ],
    },
    maxAttempts: { type: 'integer', minimum: 1, maximum: 5, default: DEFAULTS.maxAttempts, description: 'Attempts per call, the first included, for UNAVAILABLE, a per-attempt timeout or a failed CRC32C check. RESOURCE_EXHAUSTED is never retried.' },
    requestTimeoutMs: { type: 'integer', minimum: 50, maximum: 60_000, default: DEFAULTS.requestTimeoutMs, description: 'Per attempt: longest wait for one RPC.' },
    callTimeoutMs: { type: 'integer', minimum: 100, maximum: 120_000, default: DEFAULTS.callTimeoutMs, description: 'Upper bound for one wrap/unwrap/probe including retries, when the caller gives a looser deadline.' },
    rotationTimeoutMs: { type: 'integer', minimum: 1000, maximum: 600_000, default: DEFAULTS.rotationTimeoutMs, description: 'Upper bound for rotate() waiting for a new (HSM) version to leave PENDING_GENERATION.' },
  },
} as const;

const intIn = (v: number | undefined, min: number, max: number, fallback: number, what: string): number => {
  if (v === undefined) return fallback;
  needs(Number.isInteger(v) && v >= min && v <= max, `${what} must be an integer in ${min}..${max}`);
  return v;
};

/** Build the provider from a validated config section. Throws `invalid-input` naming the bad field. */
export function fromConfig(id: string, cfg: GcpKmsConfig): GcpKmsProvider {
  const at = `providers.${id}`;
  needs(isValidName(id), `provider id ${id} must be a DNS label (a-z, 0-9, -; 1..63 characters)`);
  needs(cfg.type === 'gcp-kms', `${at}.type must be gcp-kms`);
  needs(typeof cfg.keyName === 'string' && KEY_NAME.test(cfg.keyName), `${at}.keyName must be projects/P/locations/L/keyRings/R/cryptoKeys/K`);
  const known = new Set(Object.keys(configSchema.properties));
  for (const k of Object.keys(cfg)) needs(known.has(k), `${at}.${k} is not a gcp-kms option`);
  if (cfg.endpoint !== undefined) needs(typeof cfg.endpoint === 'string' && new RegExp(ENDPOINT).test(cfg.endpoint), `${at}.endpoint must be host:port`);
  if (cfg.insecureLoopback) {
    // Plaintext would expose every key we wrap and unwrap to the network path.
    needs(cfg.endpoint !== undefined && LOOPBACK.test(splitEndpoint(cfg.endpoint).host), `${at}.insecureLoopback needs a loopback endpoint (127.0.0.1:PORT)`);
  }
  const creds = cfg.credentials;
  if (creds !== undefined) {
    needs(creds.source === 'default' || (creds.source === 'file' && typeof creds.file === 'string' && creds.file !== ''), `${at}.credentials must be {source: default} or {source: file, file: PATH}`);
    needs(!cfg.insecureLoopback || creds.source === 'default', `${at}.credentials cannot be used with insecureLoopback (nothing is sent)`);
  }
  const timing = {
    maxAttempts: intIn(cfg.maxAttempts, 1, 5, DEFAULTS.maxAttempts, `${at}.maxAttempts`),
    requestTimeoutMs: intIn(cfg.requestTimeoutMs, 50, 60_000, DEFAULTS.requestTimeoutMs, `${at}.requestTimeoutMs`),
    callTimeoutMs: intIn(cfg.callTimeoutMs, 100, 120_000, DEFAULTS.callTimeoutMs, `${at}.callTimeoutMs`),
    rotationTimeoutMs: intIn(cfg.rotationTimeoutMs, 1000, 600_000, DEFAULTS.rotationTimeoutMs, `${at}.rotationTimeoutMs`),
  };
  // Only now, with everything checked, build the client (no network until the first call).
  const client = createSdkClient({
    ...(cfg.endpoint !== undefined ? { endpoint: cfg.endpoint } : {}),
    insecure: cfg.insecureLoopback === true,
    ...(creds?.source === 'file' ? { credentialsFile: creds.file } : {}),
  });
  return new GcpKmsProvider({ id, keyName: cfg.keyName, client, ...timing, details: { endpoint: cfg.endpoint ?? 'cloudkms.googleapis.com:443' } });
}

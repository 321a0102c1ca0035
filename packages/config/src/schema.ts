/**
 * The broker's configuration schema: one YAML file, validated once at start, then frozen. Unknown keys are
 * errors (a typo must not silently fall back to a default). Provider sections are validated against the
 * schema their provider package publishes (see `ProviderSchemas`), so each provider owns its options.
 */
import { Type, type Static } from '@sinclair/typebox';

const Name = Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', description: 'a DNS label: a-z, 0-9 and -, 1..63 characters' });
const Listen = Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$', description: 'host:port' });

const Tls = Type.Object(
  {
    certFile: Type.String({ description: 'PEM server certificate (chain)' }),
    keyFile: Type.String({ description: 'PEM private key' }),
    clientCaFile: Type.String({ description: 'PEM CA bundle that signs client (shim) certificates; mTLS is mandatory' }),
  },
  { additionalProperties: false },
);

// ---- issue 8 (resilience): breakers, budgets, hold-down, tenant rate limits, state dir ----
const Breaker = Type.Object(
  {
    errorThresholdPercentage: Type.Number({ minimum: 1, maximum: 100, default: 50, description: 'open when more than this % of calls in the window failed with unavailable/timeout/throttled/internal' }),
    volumeThreshold: Type.Integer({ minimum: 1, maximum: 10_000, default: 5, description: 'and at least this many calls were made in the window' }),
    rollingWindowSeconds: Type.Number({ minimum: 1, maximum: 600, default: 10, description: 'length of the rolling error window' }),
    halfOpenAfterSeconds: Type.Number({ minimum: 0.1, maximum: 600, default: 5, description: 'after this long open, one trial call decides: closed or open again' }),
  },
  { additionalProperties: false, default: {} },
);
const Budget = Type.Object(
  {
    ratePerSec: Type.Number({ minimum: 0.1, maximum: 1_000_000, description: 'calls per second this broker may make to the provider (all keyrings together)' }),
    burst: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'calls allowed at once above the rate' }),
  },
  { additionalProperties: false },
);
const RetryBudget = Type.Object(
  {
    ratio: Type.Number({ minimum: 0, maximum: 1, default: 0.1, description: 'retries (the SDK\'s and the broker\'s) allowed per call made to the provider: 0.1 = one retry per ten calls' }),
    minPerSec: Type.Number({ minimum: 0, maximum: 1000, default: 1, description: 'retries allowed per second whatever the traffic (a quiet broker can still retry a reset connection)' }),
  },
  { additionalProperties: false, default: {} },
);
const RateLimit = Type.Object(
  {
    ratePerSec: Type.Number({ minimum: 0.1, maximum: 1_000_000, description: 'wrap/unwrap requests per second for this tenant' }),
    burst: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
  },
  { additionalProperties: false },
);
/** Keys of a provider section that belong to the broker, not to the provider package. */
export const BROKER_PROVIDER_KEYS = ['breaker', 'budget', 'retryBudget'] as const;
// ---- end issue 8 ----
// ---- transit (Vault-compatible transit HTTP API; see docs/transit.md) -------------------------------------
const TransitOp = Type.Union(['encrypt', 'decrypt', 'rewrap', 'datakey', 'read', 'rotate', 'config'].map((o) => Type.Literal(o)));
const Transit = Type.Object(
  {
    enabled: Type.Boolean({ default: false }),
    listen: Type.String({ ...Listen, default: '127.0.0.1:8200' }),
    mount: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', default: 'transit', description: 'paths are /v1/<mount>/...' }),
    tls: Type.Optional(
      Type.Object(
        {
          certFile: Type.String(),
          keyFile: Type.String(),
          clientCaFile: Type.Optional(Type.String({ description: 'when set, client certificates signed by it identify callers (identities[].clientCertName)' })),
        },
        { additionalProperties: false },
      ),
    ),
    keys: Type.Record(
      Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' }),
      Type.Object(
        {
          keyring: Name,
          versionProvider: Type.Optional(Type.String({ description: "provider whose version numbers are the key's versions (local or gcp-kms); default: the keyring's first provider" })),
          derived: Type.Boolean({ default: false, description: 'require a context on every request (Vault derived keys)' }),
          minDecryptionVersion: Type.Integer({ minimum: 1, default: 1 }),
          minEncryptionVersion: Type.Integer({ minimum: 0, default: 0 }),
          deletionAllowed: Type.Boolean({ default: false }),
        },
        { additionalProperties: false },
      ),
      { default: {} },
    ),
    identities: Type.Array(
      Type.Object(
        {
          tokenSha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 (hex) of the Vault token' })),
          clientCertName: Type.Optional(Type.String({ minLength: 1, description: '"CN=<name>" or a SAN URI of an mTLS client certificate' })),
          tenant: Name,
          keys: Type.Array(Type.String({ minLength: 1 }), { default: ['*'], description: 'transit key names, or "*"' }),
          operations: Type.Array(TransitOp, { default: ['encrypt', 'decrypt', 'rewrap', 'datakey', 'read'], uniqueItems: true }),
        },
        { additionalProperties: false },
      ),
      { default: [], description: 'reloaded on SIGHUP' },
    ),
    policyFile: Type.Optional(Type.String({ description: 'where keys/:name/config changes made through the API are kept; without it they are refused' })),
    maxPlaintextBytes: Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024, default: 1024 * 1024 }),
    maxBatchItems: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 256 * 1024 * 1024, default: 32 * 1024 * 1024 }),
    rateLimit: Type.Object(
      {
        requestsPerSecond: Type.Number({ minimum: 0, default: 0, description: 'per tenant; 0 = unlimited' }),
        burst: Type.Integer({ minimum: 1, default: 100 }),
        tenants: Type.Record(
          Name,
          Type.Object({ requestsPerSecond: Type.Number({ minimum: 0 }), burst: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
          { default: {}, description: 'per-tenant overrides of requestsPerSecond and burst' },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    dataKeys: Type.Object(
      {
        maxAgeSeconds: Type.Integer({ minimum: 1, maximum: 24 * 3600, default: 300 }),
        maxMessages: Type.Integer({ minimum: 1, maximum: 2 ** 32, default: 2 ** 30, description: 'AES-GCM random nonces: stay well below 2^32' }),
        maxBytes: Type.Number({ minimum: 1, maximum: 2 ** 50, default: 2 ** 40 }),
        maxEntries: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
);
// ---- end transit ------------------------------------------------------------------------------------------

// --- issue 9 (HA) block: Redis connection ---
const RedisSection = Type.Object(
  {
    mode: Type.Union([Type.Literal('standalone'), Type.Literal('sentinel'), Type.Literal('cluster')], { default: 'standalone' }),
    nodes: Type.Array(Type.String({ pattern: '^[A-Za-z0-9.:\\[\\]-]+:[0-9]{1,5}$' }), {
      minItems: 1, description: 'host:port; standalone: the server; sentinel: the sentinels; cluster: seed nodes',
    }),
    sentinelName: Type.Optional(Type.String({ minLength: 1, description: 'sentinel mode: the master group name' })),
    username: Type.Optional(Type.String({ minLength: 1, description: 'ACL user' })),
    passwordFile: Type.Optional(Type.String({ description: 'file holding the ACL password (read once at start)' })),
    passwordEnv: Type.Optional(Type.String({ pattern: '^[A-Z_][A-Z0-9_]*$', description: 'environment variable holding the ACL password' })),
    db: Type.Integer({ minimum: 0, maximum: 15, default: 0, description: 'standalone/sentinel only' }),
    keyPrefix: Type.String({ pattern: '^[A-Za-z0-9:_-]{1,32}$', default: 'kekbroker:', description: 'prefix of every key and channel' }),
    tls: Type.Optional(
      Type.Object(
        {
          caFile: Type.Optional(Type.String({ description: 'PEM CA bundle for the Redis server certificate' })),
          certFile: Type.Optional(Type.String({ description: 'client certificate (Redis tls-auth-clients)' })),
          keyFile: Type.Optional(Type.String()),
          serverName: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
    commandTimeoutMs: Type.Integer({ minimum: 20, maximum: 10_000, default: 500, description: 'a Redis command slower than this fails and the broker goes on without Redis for a 1 s back-off' }),
    connectTimeoutMs: Type.Integer({ minimum: 50, maximum: 30_000, default: 1000 }),
  },
  { additionalProperties: false, description: 'optional: shared sealed L2 cache, fleet-wide single-flight, invalidation, leader lease' },
);
// --- end issue 9 block ---

export const ConfigSchema = Type.Object(
  {
    grpc: Type.Object(
      {
        listen: Type.String({ ...Listen, default: '127.0.0.1:7443' }),
        tls: Type.Optional(Tls),
        insecureLoopback: Type.Boolean({ default: false, description: 'dev only: plaintext gRPC without client identity, refused unless listen is a loopback address' }),
        devTenantHeader: Type.Boolean({ default: true, description: 'in insecureLoopback mode, take the tenant from the x-kekbroker-tenant header' }),
      },
      { additionalProperties: false, default: {} },
    ),
    http: Type.Object(
      { listen: Type.String({ ...Listen, default: '127.0.0.1:7480' }) },
      { additionalProperties: false, default: {}, description: '/healthz, /readyz, /metrics' },
    ),
    admin: Type.Object(
      {
        listen: Type.String({ ...Listen, default: '127.0.0.1:7481' }),
        tokenSha256: Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { default: [], description: 'SHA-256 (hex) of accepted admin bearer tokens' }),
        tokenFile: Type.Optional(Type.String({ description: 'file holding one admin bearer token (hashed at load; the file is not kept open)' })),
      },
      { additionalProperties: false, default: {} },
    ),
    providers: Type.Record(
      Name,
      Type.Object(
        {
          type: Type.String(),
          // issue 8: the provider's circuit breaker and call budget (a default budget per type applies when absent)
          breaker: Breaker,
          budget: Type.Optional(Budget),
          // retries of provider calls (the SDK's own included) as a share of calls; throttling is never retried
          retryBudget: RetryBudget,
        },
        { additionalProperties: true },
      ),
      { minProperties: 1 },
    ),
    keyrings: Type.Record(
      Name,
      Type.Object(
        {
          providers: Type.Array(Name, { minItems: 1, maxItems: 8, uniqueItems: true, description: 'ordered: the first is active, the rest passive' }),
          minWraps: Type.Integer({ minimum: 1, maximum: 8, default: 1, description: 'fail a wrap unless at least this many providers wrapped it' }),
          // issue 8
          holdDownSeconds: Type.Number({ minimum: 0, maximum: 3600, default: 60, description: 'a recovered provider acts as active again only after this long healthy' }),
          verifyWraps: Type.Boolean({ default: true, description: 'unwrap every new wrap once before it goes into an envelope' }),
          // issue 12: rotation lifecycle
          rotationPeriodSeconds: Type.Integer({ minimum: 0, maximum: 10 * 365 * 24 * 3600, default: 0, description: 'rotate every provider of the keyring this often, run by the leader (0 = only on request)' }),
          retireQuietSeconds: Type.Integer({ minimum: 0, maximum: 365 * 24 * 3600, default: 7 * 24 * 3600, description: 'a generation can be retired only when no tenant has unwrapped it for this long (unless forced)' }),
        },
        { additionalProperties: false },
      ),
      { minProperties: 1 },
    ),
    tenants: Type.Record(
      Name,
      Type.Object(
        {
          keyrings: Type.Array(Name, { minItems: 1, uniqueItems: true }),
          operations: Type.Array(Type.Union([Type.Literal('wrap'), Type.Literal('unwrap')]), { default: ['wrap', 'unwrap'], uniqueItems: true }),
          clientCertNames: Type.Array(Type.String({ minLength: 1 }), {
            default: [],
            description: 'client certificate identities mapped to this tenant: "CN=<common name>" or a SAN URI such as spiffe://...',
          }),
          rateLimit: Type.Optional(RateLimit), // issue 8: over it, RESOURCE_EXHAUSTED
        },
        { additionalProperties: false },
      ),
      { minProperties: 1 },
    ),
    health: Type.Object(
      {
        refreshSeconds: Type.Integer({
          minimum: 1, maximum: 300, default: 15,
          description: 'how often every provider is described and probed: a rotation elsewhere, a KMS outage or a damaged local keystore shows within one refresh',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    cache: Type.Object(
      {
        maxEntries: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 100_000, description: '0 disables the L1 cache' }),
        ttlSeconds: Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600, default: 3600, description: 'you cannot cache a key forever' }),
        // --- issue 9 (HA) block: cache bounds and stale serving ---
        maxBytes: Type.Integer({ minimum: 0, maximum: 64 * 1024 * 1024 * 1024, default: 256 * 1024 * 1024, description: 'L1 bound in bytes of cached plaintext (with maxEntries: whichever is hit first)' }),
        maxStaleSeconds: Type.Integer({ minimum: 0, maximum: 24 * 3600, default: 0, description: 'serve an expired entry this long past its TTL when the KMS is unavailable, timing out or throttling (0 = never)' }),
        perTenantMaxFraction: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.5, description: 'largest share of maxBytes and maxEntries one tenant may hold' }),
        // --- end issue 9 block ---
      },
      { additionalProperties: false, default: {} },
    ),
    // --- issue 9 (HA) block: Redis and leadership ---
    redis: Type.Optional(RedisSection),
    ha: Type.Object(
      {
        replicaId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', description: 'this replica in logs, metrics and the lease (default: hostname-pid)' })),
        leaseTtlMs: Type.Integer({ minimum: 1000, maximum: 60_000, default: 5000, description: 'leader lease TTL: a dead leader is replaced within this' }),
        renewEveryMs: Type.Integer({ minimum: 200, maximum: 20_000, default: 1500, description: 'lease renewal period; must be well below leaseTtlMs' }),
        sealingKeyRotationSeconds: Type.Integer({ minimum: 60, maximum: 90 * 24 * 3600, default: 24 * 3600, description: 'the leader replaces the L2 cache-sealing key this often' }),
        flightLockMs: Type.Integer({ minimum: 200, maximum: 30_000, default: 1500, description: 'fleet-wide single-flight lock TTL (renewed while the holder works; a dead holder is taken over after it)' }),
      },
      { additionalProperties: false, default: {}, description: 'used only when redis is configured' },
    ),
    // --- end issue 9 block ---
    limits: Type.Object(
      {
        deadlineMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 2500, description: 'longest the broker works on one request' }),
        maxPlaintextBytes: Type.Integer({ minimum: 32, maximum: 1024 * 1024, default: 1024 * 1024 }),
      },
      { additionalProperties: false, default: {} },
    ),
    // issue 8
    state: Type.Object(
      { dir: Type.Optional(Type.String({ description: 'small state files (last known provider version refs, for key_id continuity); relative to the config file' })) },
      { additionalProperties: false, default: {} },
    ),
    log: Type.Object(
      {
        level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => Type.Literal(l)), { default: 'info' }),
        audit: Type.Boolean({ default: true, description: 'one JSON line per wrap/unwrap (who, what, result, latency); never key material' }),
      },
      { additionalProperties: false, default: {} },
    ),
    transit: Transit,
  },
  { additionalProperties: false },
);

export type BrokerConfig = Static<typeof ConfigSchema>;
export type ProviderSection = BrokerConfig['providers'][string];

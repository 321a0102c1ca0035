/**
 * loadConfig: parse YAML, apply defaults, validate (reporting every error with its path), cross-check
 * references, validate each provider section against its own schema, resolve relative paths against the
 * config file's folder, and deep-freeze. Nothing binds a port before this succeeds.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import Ajv, { type ErrorObject } from 'ajv';
import { parseDocument } from 'yaml';
import { BROKER_PROVIDER_KEYS, ConfigSchema, type BrokerConfig } from './schema';
import { transitProblems } from './transit-checks';

/** JSON schemas of provider sections, by provider type (e.g. { local: {...}, 'aws-kms': {...} }). */
export type ProviderSchemas = Readonly<Record<string, object>>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly file: string, readonly problems: readonly string[]) {
    super(`${file}: ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

function describe(e: ErrorObject): string {
  const at = e.instancePath === '' ? '(top level)' : e.instancePath;
  if (e.keyword === 'additionalProperties') return `${at}: unknown key "${String(e.params['additionalProperty'])}"`;
  if (e.keyword === 'enum') return `${at}: must be one of ${JSON.stringify(e.params['allowedValues'])}`;
  return `${at}: ${e.message ?? 'is invalid'}`;
}

/**
 * YAML (like JSON.parse) turns a `__proto__` key into an own property, which ajv does not check against
 * the name patterns and which later code could mistake for the prototype. Refuse it outright.
 */
function protoKeys(o: unknown, at: string, out: string[]): string[] {
  if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      if (k === '__proto__') out.push(`${at || '(top level)'}: key "__proto__" is not allowed`);
      else protoKeys(v, `${at}/${k}`, out);
    }
  }
  return out;
}

export function validateConfig(raw: unknown, file: string, providerSchemas: ProviderSchemas): BrokerConfig {
  const bad = protoKeys(raw, '', []);
  if (bad.length) throw new ConfigError(file, bad);
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
  const validate = ajv.compile<BrokerConfig>(ConfigSchema);
  const problems: string[] = [];
  const cfg = (raw ?? {}) as BrokerConfig;
  if (!validate(cfg)) {
    // Drop the noise ajv adds for anyOf/union branches; keep one line per real problem.
    for (const e of validate.errors ?? []) if (e.keyword !== 'anyOf') problems.push(describe(e));
    throw new ConfigError(file, [...new Set(problems)]);
  }
  for (const [id, p] of Object.entries(cfg.providers)) {
    const schema = Object.hasOwn(providerSchemas, p.type) ? providerSchemas[p.type] : undefined;
    if (!schema) {
      problems.push(`/providers/${id}/type: unknown provider type "${p.type}" (known: ${Object.keys(providerSchemas).join(', ')})`);
      continue;
    }
    const v = ajv.compile(schema);
    const own = providerOwnSection(p);
    if (!v(own)) for (const e of v.errors ?? []) if (e.keyword !== 'anyOf') problems.push(describe({ ...e, instancePath: `/providers/${id}${e.instancePath}` }));
    Object.assign(p, own); // keep the defaults the provider schema filled in
  }
  for (const [name, k] of Object.entries(cfg.keyrings)) {
    k.providers.forEach((p, i) => {
      if (!Object.hasOwn(cfg.providers, p)) problems.push(`/keyrings/${name}/providers/${i}: no provider named "${p}"`);
    });
    if (k.minWraps > k.providers.length) problems.push(`/keyrings/${name}/minWraps: ${k.minWraps} is more than its ${k.providers.length} provider(s)`);
  }
  // Reserved for the cache-sealing key's wraps (packages/cache CACHE_SEALING_TENANT).
  if (cfg.tenants['kekbroker-cache-sealing']) problems.push('/tenants/kekbroker-cache-sealing: this tenant name is reserved for the broker\'s cache-sealing key; rename the tenant');
  const identities = new Map<string, string>();
  for (const [name, t] of Object.entries(cfg.tenants)) {
    t.keyrings.forEach((k, i) => {
      if (!Object.hasOwn(cfg.keyrings, k)) problems.push(`/tenants/${name}/keyrings/${i}: no keyring named "${k}"`);
    });
    for (const id of t.clientCertNames) {
      const other = identities.get(id);
      if (other) problems.push(`/tenants/${name}/clientCertNames: "${id}" is already mapped to tenant "${other}"`);
      identities.set(id, name);
    }
  }
  if (!cfg.grpc.insecureLoopback && !cfg.grpc.tls) problems.push('/grpc/tls: required unless grpc.insecureLoopback is true (dev mode)');
  if (cfg.redis) {
    if (cfg.redis.mode === 'sentinel' && !cfg.redis.sentinelName) problems.push('/redis/sentinelName: required when redis.mode is sentinel');
    if (cfg.redis.mode === 'standalone' && cfg.redis.nodes.length !== 1) problems.push('/redis/nodes: standalone mode takes exactly one host:port');
    if (cfg.redis.passwordFile && cfg.redis.passwordEnv) problems.push('/redis: give passwordFile or passwordEnv, not both');
    if (cfg.redis.tls && Boolean(cfg.redis.tls.certFile) !== Boolean(cfg.redis.tls.keyFile)) problems.push('/redis/tls: certFile and keyFile go together');
  }
  if (cfg.ha.renewEveryMs * 2 > cfg.ha.leaseTtlMs) problems.push(`/ha/renewEveryMs: ${cfg.ha.renewEveryMs} must be at most half of leaseTtlMs (${cfg.ha.leaseTtlMs}) so a slow renewal cannot lose the lease`);
  if (cfg.grpc.insecureLoopback && !isLoopback(cfg.grpc.listen)) problems.push(`/grpc/listen: insecureLoopback only binds a loopback address, not ${cfg.grpc.listen}`);
  problems.push(...transitProblems(cfg));
  if (problems.length) throw new ConfigError(file, problems);
  return cfg;
}

/** A provider section without the keys the broker owns (breaker, budget): what the provider package sees. */
export function providerOwnSection<T extends object>(section: T): T {
  const own = { ...section } as Record<string, unknown>;
  for (const k of BROKER_PROVIDER_KEYS) delete own[k];
  return own as unknown as T;
}

export function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Make file paths in the config relative to the config file, as an operator would expect. */
function resolvePaths(cfg: BrokerConfig, baseDir: string): void {
  const abs = (p: string): string => (path.isAbsolute(p) ? p : path.resolve(baseDir, p));
  if (cfg.grpc.tls) {
    cfg.grpc.tls.certFile = abs(cfg.grpc.tls.certFile);
    cfg.grpc.tls.keyFile = abs(cfg.grpc.tls.keyFile);
    cfg.grpc.tls.clientCaFile = abs(cfg.grpc.tls.clientCaFile);
  }
  if (cfg.admin.tokenFile) cfg.admin.tokenFile = abs(cfg.admin.tokenFile);
  if (cfg.state.dir) cfg.state.dir = abs(cfg.state.dir);
  // Provider sections are owned by their packages; by convention a key named `file`, `keystore`, or
  // ending in `File`/`Path` holds a path, at any depth.
  const walk = (o: Record<string, unknown>): void => {
    for (const [k, v] of Object.entries(o)) {
      if (typeof v === 'string' && /^(file|keystore)$|(File|Path)$/.test(k)) o[k] = abs(v);
      else if (v && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>);
    }
  };
  for (const p of Object.values(cfg.providers)) walk(p);
  walk(cfg.transit); // tls.*File, policyFile
  if (cfg.redis) walk(cfg.redis);
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

export function parseConfigText(text: string, file: string, providerSchemas: ProviderSchemas): BrokerConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) throw new ConfigError(file, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0] ?? 'syntax error'}`));
  const cfg = validateConfig(doc.toJS(), file, providerSchemas);
  resolvePaths(cfg, path.dirname(path.resolve(file)));
  return deepFreeze(cfg);
}

export async function loadConfig(file: string, providerSchemas: ProviderSchemas): Promise<BrokerConfig> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [`cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`]);
  }
  return parseConfigText(text, file, providerSchemas);
}

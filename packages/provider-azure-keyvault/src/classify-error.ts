/**
 * Azure SDK errors → KekError. One ordered table; the first matching row wins. Messages say what an
 * operator should do and never carry key material or SDK dumps (the vault's own one-line message is kept:
 * it names the missing permission or the disabled key, and holds no key bytes).
 *
 * References:
 * - Key Vault error codes and status: https://learn.microsoft.com/azure/key-vault/general/rest-error-codes
 *   (401 missing/invalid token, 403 Forbidden incl. innererror KeyDisabled / ForbiddenByRbac /
 *   ForbiddenByPolicy / ForbiddenByFirewall, 404 KeyNotFound, 400 BadParameter, 429 throttled).
 * - Throttling: https://learn.microsoft.com/azure/key-vault/general/overview-throttling (429 + Retry-After).
 * - SDK transport errors: @typespec/ts-http-runtime RestError (statusCode undefined, code = errno such as
 *   ECONNREFUSED/ECONNRESET) and AbortError on a fired AbortSignal.
 * - @azure/identity errors: CredentialUnavailableError (no usable credential source), AuthenticationError
 *   (Entra ID answered with an error; `statusCode` is Entra's HTTP status).
 */
import { KekError, isAbortError, isKekError, type ErrorCode } from '@kekbroker/core';
import { RETRY_AFTER_MS_HEADER } from './client';

export interface ErrorContext {
  /** Provider id from config. */
  provider: string;
  /** What we were doing, for the message: "wrap", "unwrap", "read key", "rotate". */
  op: string;
  vaultUrl: string;
  /** Key name, with `/version` when one version was involved. */
  key: string;
}

/** What the classifier reads off any error the SDK throws (RestError, AbortError, identity errors, Error). */
interface Facts {
  name: string;
  status: number | undefined;
  code: string;
  innerCode: string;
  message: string;
  retryAfterMs: number | undefined;
}

interface Row {
  when(f: Facts, c: ErrorContext): boolean;
  code: ErrorCode;
  say(f: Facts, c: ErrorContext): string;
}

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);
const TLS = /^(ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_SSL_)/;

const vaultSaid = (f: Facts): string => (f.message ? ` Vault said: "${f.message}"` : '');
const statusOf = (f: Facts): string => [f.status, f.code, f.innerCode].filter(Boolean).join(' ');

const TABLE: readonly Row[] = [
  {
    when: (f) => f.name === 'AbortError' || f.name === 'TimeoutError',
    code: 'timeout',
    say: (_, c) => `Azure Key Vault ${c.op} with key ${c.key} abandoned: deadline exceeded or caller cancelled`,
  },
  // Identity errors first: an AuthenticationError carries Entra ID's status (400/401), not the vault's.
  {
    // MSAL could not fetch the authority's metadata or reach it: Entra ID is down or unreachable from here.
    when: (f) => f.name === 'CredentialUnavailableError' && /endpoints_resolution_error|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|network/i.test(f.message),
    code: 'unavailable',
    say: (f, c) => `cannot reach Entra ID for a token to Azure Key Vault ${c.vaultUrl}: check egress to the authority (login.microsoftonline.com or authorityHost). ${f.message}`,
  },
  {
    when: (f) => ['CredentialUnavailableError', 'AuthenticationRequiredError', 'AggregateAuthenticationError'].includes(f.name),
    code: 'permission-denied',
    say: (f, c) => `no Entra ID token for Azure Key Vault ${c.vaultUrl}: the configured credential is not usable here (${f.name}): ${f.message}`,
  },
  {
    when: (f) => f.name === 'AuthenticationError' && f.status === 429,
    code: 'throttled',
    say: (_, c) => `Entra ID throttled token requests for Azure Key Vault ${c.vaultUrl}`,
  },
  {
    when: (f) => f.name === 'AuthenticationError' && (f.status === undefined || f.status >= 500 || f.status === 0),
    code: 'unavailable',
    say: (f, c) => `Entra ID is unreachable or failing (${f.status ?? 'no status'}), so no token for Azure Key Vault ${c.vaultUrl}: ${f.message}`,
  },
  {
    when: (f) => f.name === 'AuthenticationError',
    code: 'permission-denied',
    say: (f, c) => `Entra ID refused the broker's credential for Azure Key Vault ${c.vaultUrl} (${f.status ?? ''}): check tenant, client id and secret or federation.${vaultSaid(f)}`,
  },
  {
    when: (f) => f.status === 429,
    code: 'throttled',
    say: (f, c) =>
      `Azure Key Vault ${c.vaultUrl} throttled ${c.op} with key ${c.key} (429${f.retryAfterMs !== undefined ? `, retry after ${f.retryAfterMs} ms` : ''}): ` +
      'vault limits are per vault and per 10 s; lower the request rate, rely on the cache, or spread keys over vaults',
  },
  {
    when: (f) => f.status === 401,
    code: 'permission-denied',
    say: (f, c) =>
      `Azure Key Vault ${c.vaultUrl} rejected the broker's token (401): check the identity's tenant, that it still exists, and the vault's tenant.${vaultSaid(f)}`,
  },
  {
    when: (f) => f.status === 403 && f.innerCode === 'KeyDisabled',
    code: 'permission-denied',
    say: (_, c) => `Azure Key Vault key ${c.key} in ${c.vaultUrl} is disabled: enable it (az keyvault key set-attributes --enabled true) or rotate the keyring away from it`,
  },
  {
    when: (f) => f.status === 403,
    code: 'permission-denied',
    say: (f, c) =>
      `Azure Key Vault ${c.vaultUrl} denied ${c.op} with key ${c.key} (${statusOf(f)}): grant the broker's identity "Key Vault Crypto User" on the key or vault ` +
      `(access policies: keys get, wrapKey, unwrapKey; rotate needs keys/rotate/action), and check the vault firewall.${vaultSaid(f)}`,
  },
  {
    when: (f) => f.status === 404,
    code: 'not-found',
    say: (f, c) => `Azure Key Vault key ${c.key} does not exist in ${c.vaultUrl} (${statusOf(f)}): check keyName and vaultUrl; a deleted key can be recovered while soft-deleted`,
  },
  {
    when: (f, c) => f.status === 400 && c.op === 'unwrap',
    code: 'corrupt',
    say: (f, c) => `Azure Key Vault could not unwrap with key ${c.key} (${statusOf(f)}): the wrapped bytes are corrupt or were not made by this key version`,
  },
  {
    when: (f) => f.status === 400,
    code: 'invalid-input',
    say: (f, c) => `Azure Key Vault refused ${c.op} with key ${c.key} (${statusOf(f)}).${vaultSaid(f)}`,
  },
  {
    when: (f) => f.status === 408 || (f.status !== undefined && f.status >= 500),
    code: 'unavailable',
    say: (f, c) => `Azure Key Vault ${c.vaultUrl} is unavailable (${statusOf(f)} on ${c.op}, after bounded retries); retry later or fail over`,
  },
  {
    when: (f) => f.status === undefined && (NETWORK.has(f.code) || /socket hang up/i.test(f.message)),
    code: 'unavailable',
    say: (f, c) => `cannot reach Azure Key Vault ${c.vaultUrl} (${f.code || 'connection closed'} on ${c.op}, after bounded retries): check DNS, network policy, proxy and the vault firewall`,
  },
  {
    when: (f) => TLS.test(f.code),
    code: 'unavailable',
    say: (f, c) => `TLS to Azure Key Vault ${c.vaultUrl} failed (${f.code}): the server certificate is not trusted; check tlsCaFile and any TLS-intercepting proxy`,
  },
  {
    when: (f) => /challenge resource .* does not match/i.test(f.message),
    code: 'permission-denied',
    say: (_, c) => `the auth challenge from ${c.vaultUrl} names another resource than the vault URL's domain: use the vault's *.vault.azure.net or *.managedhsm.azure.net URL`,
  },
  {
    when: (f) => /Operation \w+ is not supported on key/.test(f.message),
    code: 'permission-denied',
    say: (_, c) => `Azure Key Vault key ${c.key} does not permit ${c.op}: its key_ops must include wrapKey and unwrapKey`,
  },
  {
    when: (f) => /can't be used before|expired at/.test(f.message),
    code: 'permission-denied',
    say: (_, c) => `Azure Key Vault key ${c.key} is outside its validity period (not-before/expiry): extend it or rotate to a new version`,
  },
  {
    when: (f) => f.status !== undefined,
    code: 'internal',
    say: (f, c) => `unexpected answer from Azure Key Vault ${c.vaultUrl} to ${c.op} with key ${c.key} (${statusOf(f)})`,
  },
];

export function classifyAzureError(e: unknown, c: ErrorContext): KekError {
  if (isKekError(e)) return e;
  const f = factsOf(e);
  const row = TABLE.find((r) => r.when(f, c)) ?? (isAbortError(e) ? TABLE[0] : undefined);
  if (!row) return new KekError('internal', `unexpected error during Azure Key Vault ${c.op} with key ${c.key} in ${c.vaultUrl}`, { provider: c.provider, cause: e });
  return new KekError(row.code, row.say(f, c), {
    provider: c.provider,
    cause: e,
    ...(row.code === 'throttled' && f.retryAfterMs !== undefined ? { retryAfterMs: f.retryAfterMs } : {}),
  });
}

function factsOf(e: unknown): Facts {
  const o = (typeof e === 'object' && e !== null ? e : {}) as {
    name?: unknown; statusCode?: unknown; code?: unknown; message?: unknown;
    details?: { error?: { innerError?: { code?: unknown }; innererror?: { code?: unknown } } };
    response?: { headers?: { get?(name: string): string | undefined } };
  };
  const inner = o.details?.error?.innerError?.code ?? o.details?.error?.innererror?.code;
  const headers = o.response?.headers;
  const header = headers && typeof headers.get === 'function' ? headers.get(RETRY_AFTER_MS_HEADER) : undefined;
  const retryAfterMs = header !== undefined && /^[0-9]{1,9}$/.test(header) ? Number(header) : undefined;
  return {
    name: typeof o.name === 'string' ? o.name : '',
    status: typeof o.statusCode === 'number' ? o.statusCode : undefined,
    code: typeof o.code === 'string' ? o.code : '',
    innerCode: typeof inner === 'string' ? inner : '',
    message: oneLine(o.message),
    retryAfterMs,
  };
}

/** First line of a message, control characters removed, bounded: safe to put in an error we return. */
function oneLine(m: unknown): string {
  if (typeof m !== 'string') return '';
  const first = m.split(/\r?\n/, 1)[0] ?? '';
  const clean = first.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  return clean.length > 240 ? `${clean.slice(0, 240)}…` : clean;
}

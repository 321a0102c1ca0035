/**
 * The classification table, row by row, with REAL errors: each case drives the real SDK (through
 * sdk-client.ts) against the Key Vault emulator with a fault or a misconfiguration, catches what the SDK
 * throws, and classifies it. Asserting the raw error's shape too documents what the SDK really produces.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isKekError, type ErrorCode } from '@kekbroker/core';
import { startAzureKeyVaultEmulator, type AzureKeyVaultEmulator } from '@kekbroker/emulators';
import { classifyAzureError, type ErrorContext } from './classify-error';
import type { KeyVaultClient, TokenCredentialLike } from './client';
import { createCredential, createSdkClient, type SdkClientOptions } from './sdk-client';

const SECRET = Buffer.from('5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e7abcd', 'hex');
const token = (t: string): TokenCredentialLike => ({ getToken: async () => ({ token: t, expiresOnTimestamp: Date.now() + 3600_000 }) });

let emu: AzureKeyVaultEmulator;
let closedPort: number;

function client(over: Partial<SdkClientOptions> = {}): KeyVaultClient {
  return createSdkClient({
    vaultUrl: emu.vaultUrl,
    credential: token('classify-token'),
    caPem: emu.caPem,
    disableChallengeResourceVerification: true,
    retry: { maxRetries: 1, retryDelayMs: 10, maxRetryDelayMs: 20 },
    ...over,
  });
}

const opts = (signal: AbortSignal = AbortSignal.timeout(10_000)): { abortSignal: AbortSignal } => ({ abortSignal: signal });

/** Run `fn`, which must throw; return what it threw. */
async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  assert.fail('expected the SDK call to throw');
}

async function freshKey(name: string, kty: 'RSA' | 'oct-HSM' = 'RSA'): Promise<void> {
  await emu.createKey(name, kty);
}

interface Case {
  name: string;
  op: string;
  code: ErrorCode;
  /** Words the operator must see. */
  says: RegExp;
  /** What the raw SDK error looks like (name / statusCode / code). */
  raw: Record<string, unknown>;
  retryAfterMs?: number;
  produce(): Promise<unknown>;
}

const CASES: Case[] = [
  {
    name: '404 KeyNotFound',
    op: 'read key',
    code: 'not-found',
    says: /does not exist in https:\/\/127\.0\.0\.1:\d+ \(404 KeyNotFound\)/,
    raw: { name: 'RestError', statusCode: 404, code: 'KeyNotFound' },
    produce: () => thrown(() => client().getKey('absent-key', undefined, opts())),
  },
  {
    name: '403 Forbidden / KeyDisabled',
    op: 'unwrap',
    code: 'permission-denied',
    says: /is disabled: enable it/,
    raw: { name: 'RestError', statusCode: 403, code: 'Forbidden' },
    async produce() {
      await freshKey('disabled-key');
      const c = client();
      const crypto = c.cryptoFor(await c.getKey('disabled-key', undefined, opts()));
      const w = await crypto.wrapKey('RSA-OAEP-256', SECRET, opts());
      await emu.disableKey('disabled-key');
      return thrown(() => crypto.unwrapKey('RSA-OAEP-256', w.result, opts()));
    },
  },
  {
    name: '403 Forbidden for an operation the key does not permit',
    op: 'wrap',
    code: 'permission-denied',
    says: /Key Vault Crypto User.*Vault said: "Operation wrapKey is not permitted/,
    raw: { name: 'RestError', statusCode: 403, code: 'Forbidden' },
    async produce() {
      await freshKey('sign-only');
      const c = client();
      // The SDK checks key_ops locally from the key it was built with; change them on the server afterwards.
      const crypto = c.cryptoFor(await c.getKey('sign-only', undefined, opts()));
      await emu.setKeyOps('sign-only', ['sign', 'verify']);
      return thrown(() => crypto.wrapKey('RSA-OAEP-256', SECRET, opts()));
    },
  },
  {
    name: 'key_ops checked by the SDK before any request',
    op: 'wrap',
    code: 'permission-denied',
    says: /key_ops must include wrapKey and unwrapKey/,
    raw: { name: 'Error' },
    async produce() {
      await freshKey('local-check');
      await emu.setKeyOps('local-check', ['sign', 'verify']);
      const c = client();
      const crypto = c.cryptoFor(await c.getKey('local-check', undefined, opts()));
      return thrown(() => crypto.wrapKey('RSA-OAEP-256', SECRET, opts()));
    },
  },
  {
    name: '401 for a token the vault rejects (after the challenge)',
    op: 'read key',
    code: 'permission-denied',
    says: /rejected the broker's token \(401\)/,
    raw: { name: 'RestError', statusCode: 401, code: 'Unauthorized' },
    async produce() {
      await freshKey('token-key');
      emu.rejectToken('revoked-token');
      return thrown(() => client({ credential: token('revoked-token') }).getKey('token-key', undefined, opts()));
    },
  },
  {
    name: '429 throttled, with the server\'s Retry-After',
    op: 'wrap',
    code: 'throttled',
    says: /throttled wrap .*\(429, retry after 1000 ms\)/,
    raw: { name: 'RestError', statusCode: 429, code: 'Throttled' },
    retryAfterMs: 1000,
    async produce() {
      await freshKey('hot-key');
      const c = client();
      const crypto = c.cryptoFor(await c.getKey('hot-key', undefined, opts()));
      emu.faults.add({ kind: 'throttle', key: 'hot-key' });
      return thrown(() => crypto.wrapKey('RSA-OAEP-256', SECRET, opts()));
    },
  },
  {
    name: '503 after bounded retries',
    op: 'read key',
    code: 'unavailable',
    says: /is unavailable \(503 ServiceUnavailable/,
    raw: { name: 'RestError', statusCode: 503, code: 'ServiceUnavailable' },
    async produce() {
      await freshKey('sick-key');
      emu.faults.add({ kind: 'error', key: 'sick-key' });
      return thrown(() => client().getKey('sick-key', undefined, opts()));
    },
  },
  {
    name: '400 BadParameter on unwrap (tampered bytes)',
    op: 'unwrap',
    code: 'corrupt',
    says: /corrupt or were not made by this key version/,
    raw: { name: 'RestError', statusCode: 400, code: 'BadParameter' },
    async produce() {
      await freshKey('tamper-key', 'oct-HSM');
      const c = client();
      const crypto = c.cryptoFor(await c.getKey('tamper-key', undefined, opts()));
      const w = Buffer.from((await crypto.wrapKey('A256KW', SECRET, opts())).result);
      w[9] = (w[9] ?? 0) ^ 0x10;
      return thrown(() => crypto.unwrapKey('A256KW', w, opts()));
    },
  },
  {
    name: '400 BadParameter on wrap (too long for the key)',
    op: 'wrap',
    code: 'invalid-input',
    says: /refused wrap .*\(400 BadParameter\)/,
    raw: { name: 'RestError', statusCode: 400, code: 'BadParameter' },
    async produce() {
      await freshKey('small-key');
      const c = client();
      const crypto = c.cryptoFor(await c.getKey('small-key', undefined, opts()));
      return thrown(() => crypto.wrapKey('RSA-OAEP-256', Buffer.alloc(300, 1), opts()));
    },
  },
  {
    name: 'connection reset (outage)',
    op: 'read key',
    code: 'unavailable',
    says: /cannot reach Azure Key Vault .*ECONNRESET/,
    raw: { name: 'RestError', statusCode: undefined, code: 'ECONNRESET' },
    async produce() {
      emu.faults.add({ kind: 'outage' });
      emu.onFaultsChanged();
      return thrown(() => client().getKey('absent-key', undefined, opts()));
    },
  },
  {
    name: 'connection refused',
    op: 'read key',
    code: 'unavailable',
    says: /cannot reach Azure Key Vault .*ECONNREFUSED/,
    raw: { name: 'RestError', code: 'ECONNREFUSED' },
    produce: () => thrown(() => client({ vaultUrl: `https://127.0.0.1:${closedPort}` }).getKey('k', undefined, opts())),
  },
  {
    name: 'aborted by the caller\'s deadline',
    op: 'wrap',
    code: 'timeout',
    says: /abandoned: deadline exceeded or caller cancelled/,
    raw: { name: 'AbortError' },
    async produce() {
      await freshKey('slow-key');
      const c = client();
      const crypto = c.cryptoFor(await c.getKey('slow-key', undefined, opts()));
      emu.faults.add({ kind: 'latency', ms: 60_000, key: 'slow-key' });
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      return thrown(() => crypto.wrapKey('RSA-OAEP-256', SECRET, opts(ac.signal)));
    },
  },
  {
    name: 'untrusted TLS certificate',
    op: 'read key',
    code: 'unavailable',
    says: /TLS to Azure Key Vault .*not trusted; check tlsCaFile/,
    raw: { name: 'RestError', code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    produce: () => thrown(() => createSdkClient({ vaultUrl: emu.vaultUrl, credential: token('t'), disableChallengeResourceVerification: true }).getKey('k', undefined, opts())),
  },
  {
    name: 'challenge resource does not match the vault host',
    op: 'read key',
    code: 'permission-denied',
    says: /names another resource than the vault URL's domain/,
    raw: { name: 'Error' },
    produce: () => thrown(() => client({ disableChallengeResourceVerification: false }).getKey('absent-key', undefined, opts())),
  },
  {
    name: 'credential for another tenant than the vault\'s',
    op: 'read key',
    code: 'permission-denied',
    says: /no Entra ID token .*CredentialUnavailableError/,
    raw: { name: 'CredentialUnavailableError' },
    produce: () =>
      thrown(() =>
        client({
          credential: createCredential(
            { type: 'client-secret', tenantId: '00000000-0000-0000-0000-0000000000aa', clientId: '00000000-0000-0000-0000-0000000000bb', authorityHost: `https://127.0.0.1:${closedPort}`, disableInstanceDiscovery: true },
            'not-a-real-secret',
          ),
        }).getKey('absent-key', undefined, opts()),
      ),
  },
  {
    name: 'Entra ID unreachable',
    op: 'read key',
    code: 'unavailable',
    says: /cannot reach Entra ID/,
    raw: { name: 'CredentialUnavailableError' },
    produce: () =>
      thrown(() =>
        client({
          credential: createCredential(
            { type: 'client-secret', tenantId: emu.tenantId, clientId: '00000000-0000-0000-0000-0000000000bb', authorityHost: `https://127.0.0.1:${closedPort}`, disableInstanceDiscovery: true },
            'not-a-real-secret',
            { maxRetries: 0, retryDelayMs: 10, maxRetryDelayMs: 10 },
          ),
        }).getKey('absent-key', undefined, opts()),
      ),
  },
  {
    name: 'an HTTP status the table does not know (413)',
    op: 'wrap',
    code: 'internal',
    says: /unexpected answer from Azure Key Vault .*\(413 BadParameter\)/,
    raw: { name: 'RestError', statusCode: 413 },
    async produce() {
      await freshKey('big-key', 'oct-HSM');
      const c = client();
      const crypto = c.cryptoFor(await c.getKey('big-key', undefined, opts()));
      return thrown(() => crypto.wrapKey('A256KW', Buffer.alloc(64 * 1024, 1), opts()));
    },
  },
];

describe('classifyAzureError with real SDK errors', () => {
  before(async () => {
    emu = await startAzureKeyVaultEmulator();
    const srv = net.createServer();
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
    closedPort = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  after(async () => {
    await emu.close();
  });

  for (const c of CASES) {
    it(`${c.name} → ${c.code}`, async () => {
      let raw: unknown;
      try {
        raw = await c.produce();
      } finally {
        emu.faults.clear();
      }
      for (const [k, v] of Object.entries(c.raw)) assert.equal((raw as Record<string, unknown>)[k], v, `raw SDK error ${k}`);
      const ctx: ErrorContext = { provider: 'azure-test', op: c.op, vaultUrl: emu.vaultUrl, key: 'kek' };
      const e = classifyAzureError(raw, ctx);
      assert.ok(isKekError(e));
      assert.equal(e.code, c.code, e.message);
      assert.match(e.message, c.says);
      assert.equal(e.provider, 'azure-test');
      assert.equal(e.cause, raw, 'the SDK error stays attached for the log');
      assert.equal(e.retryAfterMs, c.retryAfterMs);
      assert.ok(!e.message.includes(SECRET.toString('hex')) && !e.message.includes(SECRET.toString('base64')), 'no key material in messages');
      assert.ok(!e.message.includes('\n'), 'one line');
    });
  }

  it('an error that is not the SDK\'s becomes internal with a generic message', () => {
    const e = classifyAzureError(new TypeError('Cannot read properties of undefined (reading "kid")'), {
      provider: 'azure-test', op: 'wrap', vaultUrl: 'https://v.vault.azure.net', key: 'kek',
    });
    assert.equal(e.code, 'internal');
    assert.doesNotMatch(e.message, /Cannot read/);
  });

  it('a KekError passes through unchanged', () => {
    const original = classifyAzureError(new Error('x'), { provider: 'p', op: 'wrap', vaultUrl: 'https://v', key: 'k' });
    assert.equal(classifyAzureError(original, { provider: 'q', op: 'unwrap', vaultUrl: 'https://w', key: 'j' }), original);
  });
});

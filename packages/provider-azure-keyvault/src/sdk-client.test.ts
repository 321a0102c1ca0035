/**
 * What the SDK adapter promises, counted on the emulator's side of the wire: every wrap reaches the
 * vault, 429 is never retried (the caller learns at once, with the server's hint), 5xx and resets are
 * retried a bounded number of times.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startAzureKeyVaultEmulator, type AzureKeyVaultEmulator } from '@kekbroker/emulators';
import type { KeyVaultClient } from './client';
import { createSdkClient, retryAfterMs, type RetrySettings } from './sdk-client';

let emu: AzureKeyVaultEmulator;
const opts = (): { abortSignal: AbortSignal } => ({ abortSignal: AbortSignal.timeout(10_000) });

function client(retry: RetrySettings = { maxRetries: 2, retryDelayMs: 10, maxRetryDelayMs: 20 }): KeyVaultClient {
  return createSdkClient({
    vaultUrl: emu.vaultUrl,
    credential: { getToken: async () => ({ token: 'sdk-test', expiresOnTimestamp: Date.now() + 3600_000 }) },
    caPem: emu.caPem,
    disableChallengeResourceVerification: true,
    retry,
  });
}

describe('sdk-client against the Key Vault emulator', () => {
  before(async () => {
    emu = await startAzureKeyVaultEmulator();
    await emu.createKey('rsa', 'RSA');
    await emu.createKey('hsm', 'oct-HSM');
  });
  after(async () => {
    await emu.close();
  });
  beforeEach(() => emu.faults.clear());

  it('maps a KeyVaultKey to VaultKey (version, type, ops, modulus)', async () => {
    const k = await client().getKey('rsa', undefined, opts());
    assert.match(k.version, /^[0-9a-f]{32}$/);
    assert.equal(k.id, `${emu.vaultUrl}/keys/rsa/${k.version}`);
    assert.equal(k.keyType, 'RSA');
    assert.equal(k.enabled, true);
    assert.equal(k.modulusBytes, 256);
    assert.ok(k.keyOps?.includes('wrapKey') && k.keyOps.includes('unwrapKey'));
    const h = await client().getKey('hsm', undefined, opts());
    assert.equal(h.keyType, 'oct-HSM');
    assert.equal(h.modulusBytes, undefined);
    const pinned = await client().getKey('rsa', k.version, opts());
    assert.equal(pinned.id, k.id);
  });

  for (const [name, alg] of [['rsa', 'RSA-OAEP-256'], ['hsm', 'A256KW']] as const) {
    it(`${alg}: every wrap crosses the wire, and no extra GET for a client built from a fetched key`, async () => {
      const c = client();
      const key = await c.getKey(name, undefined, opts());
      const gets = emu.faults.callCount('getKey');
      const wraps = emu.faults.callCount('wrapKey');
      const crypto = c.cryptoFor(key);
      const seed = Buffer.alloc(40, 3);
      for (let i = 0; i < 3; i++) {
        const w = await crypto.wrapKey(alg, seed, opts());
        assert.equal(w.keyId?.split('/').pop(), key.version);
        assert.deepEqual(Buffer.from((await crypto.unwrapKey(alg, w.result, opts())).result), seed);
      }
      assert.equal(emu.faults.callCount('wrapKey') - wraps, 3, 'a locally performed wrap would not be seen by the vault');
      assert.equal(emu.faults.callCount('getKey') - gets, 0);
    });
  }

  it('429 is not retried: one request, and the server\'s wait survives on the error', async () => {
    const c = client();
    const crypto = c.cryptoFor(await c.getKey('rsa', undefined, opts()));
    emu.faults.add({ kind: 'throttle', key: 'rsa' });
    const before = emu.faults.callCount('wrapKey');
    const e = await crypto.wrapKey('RSA-OAEP-256', Buffer.alloc(32), opts()).then(() => undefined, (x: unknown) => x);
    assert.equal(emu.faults.callCount('wrapKey') - before, 1);
    const err = e as { statusCode?: number; response?: { headers: { get(h: string): string | undefined } } };
    assert.equal(err.statusCode, 429);
    assert.equal(err.response?.headers.get('x-kekbroker-retry-after-ms'), '1000');
    assert.equal(err.response?.headers.get('retry-after'), undefined, 'moved away from the retry policy');
  });

  it('503 is retried maxRetries times, then surfaces', async () => {
    emu.faults.add({ kind: 'error', key: 'rsa' });
    const before = emu.faults.callCount('getKey');
    await assert.rejects(client({ maxRetries: 2, retryDelayMs: 10, maxRetryDelayMs: 20 }).getKey('rsa', undefined, opts()), { statusCode: 503 });
    assert.equal(emu.faults.callCount('getKey') - before, 3);
  });

  it('a transient 503 is absorbed by the retry', async () => {
    emu.faults.add({ kind: 'error', key: 'rsa', count: 1 });
    const k = await client().getKey('rsa', undefined, opts());
    assert.equal(k.name, 'rsa');
  });

  it('every retry asks the broker\'s retry gate first; a refusal sends nothing more and surfaces the last failure', async () => {
    const c = client({ maxRetries: 3, retryDelayMs: 10, maxRetryDelayMs: 20 });
    const crypto = c.cryptoFor(await c.getKey('rsa', undefined, opts()));
    const answers = [true, false];
    let asked = 0;
    c.setRetryGate?.(() => answers[asked++] ?? false);
    const wrapped = await crypto.wrapKey('RSA-OAEP-256', Buffer.alloc(32, 1), opts());
    assert.equal(asked, 0, 'a call that succeeds at once asks nothing (the auth challenge is not a retry)');
    assert.ok(wrapped.result.length > 0);
    emu.faults.add({ kind: 'error', key: 'rsa' });
    const before = emu.faults.callCount('wrapKey');
    const e = await crypto.wrapKey('RSA-OAEP-256', Buffer.alloc(32, 1), opts()).then(() => undefined, (x: unknown) => x);
    assert.equal(emu.faults.callCount('wrapKey') - before, 2, 'the first attempt and the one retry the gate allowed');
    assert.equal(asked, 2);
    assert.equal((e as { statusCode?: number }).statusCode, 503, 'classified as the 503 it was');
  });

  it('a dropped connection is retried on a new one', async () => {
    emu.faults.add({ kind: 'outage', key: 'hsm', count: 1 });
    const k = await client().getKey('hsm', undefined, opts());
    assert.equal(k.keyType, 'oct-HSM');
  });
});

describe('retryAfterMs', () => {
  const from = (h: Record<string, string>) => (name: string): string | undefined => h[name];
  it('reads retry-after-ms, x-ms-retry-after-ms and Retry-After (seconds or HTTP date)', () => {
    assert.equal(retryAfterMs(from({ 'retry-after-ms': '250' })), 250);
    assert.equal(retryAfterMs(from({ 'x-ms-retry-after-ms': '40' })), 40);
    assert.equal(retryAfterMs(from({ 'retry-after': '3' })), 3000);
    const inTwoMinutes = new Date(Date.now() + 120_000).toUTCString();
    const ms = retryAfterMs(from({ 'retry-after': inTwoMinutes }));
    assert.ok(ms !== undefined && ms > 100_000 && ms <= 120_000, String(ms));
    assert.equal(retryAfterMs(from({ 'retry-after': 'soon' })), undefined);
    assert.equal(retryAfterMs(from({})), undefined);
  });
});

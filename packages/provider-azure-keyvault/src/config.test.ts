import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, parseConfigText } from '@kekbroker/config';
import { isKekError } from '@kekbroker/core';
import { startAzureKeyVaultEmulator, type AzureKeyVaultEmulator } from '@kekbroker/emulators';
import { configSchema, fromConfig, type AzureKeyVaultConfig } from './config';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '11111111-2222-3333-4444-555555555555';

/** Validate a provider section the way the broker does: inside a whole config, through packages/config. */
function load(section: Record<string, unknown>): AzureKeyVaultConfig {
  const text = JSON.stringify({
    grpc: { insecureLoopback: true },
    providers: { 'azure-prod': section },
    keyrings: { default: { providers: ['azure-prod'] } },
    tenants: { dev: { keyrings: ['default'] } },
  });
  const cfg = parseConfigText(text, '/etc/kekbroker/kekbroker.yaml', { 'azure-keyvault': configSchema });
  return cfg.providers['azure-prod'] as unknown as AzureKeyVaultConfig;
}

function problems(section: Record<string, unknown>): string[] {
  try {
    load(section);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

const base = { type: 'azure-keyvault', vaultUrl: 'https://contoso.vault.azure.net', keyName: 'kekbroker' };

describe('configSchema (validated by packages/config)', () => {
  it('accepts each credential type, applies defaults and resolves file paths', () => {
    for (const credential of [
      { type: 'workload-identity' },
      { type: 'workload-identity', tenantId: TENANT, clientId: CLIENT, tokenFilePath: '/var/run/secrets/azure/tokens/azure-identity-token' },
      { type: 'managed-identity' },
      { type: 'managed-identity', clientId: CLIENT },
      { type: 'client-secret', tenantId: TENANT, clientId: CLIENT, clientSecretEnv: 'KEK_AZURE_SECRET' },
      { type: 'client-secret', tenantId: TENANT, clientId: CLIENT, clientSecretFile: 'azure-secret' },
      { type: 'default' },
      { type: 'emulator' },
    ]) {
      const cfg = load({ ...base, credential });
      assert.equal(cfg.timeoutMs, 2000);
      assert.equal(cfg.refreshIntervalMs, 60_000);
      assert.equal(cfg.disableChallengeResourceVerification, false);
      if ('clientSecretFile' in credential) assert.equal((cfg.credential as { clientSecretFile?: string }).clientSecretFile, '/etc/kekbroker/azure-secret');
    }
  });

  for (const [why, section, says] of [
    ['an unknown key', { ...base, credential: { type: 'default' }, vault: 'x' }, /unknown key "vault"/],
    ['an inline secret', { ...base, credential: { type: 'client-secret', tenantId: TENANT, clientId: CLIENT, clientSecret: 'hunter2' } }, /credential: unknown key "clientSecret"/],
    ['a secret from both env and file', { ...base, credential: { type: 'client-secret', tenantId: TENANT, clientId: CLIENT, clientSecretEnv: 'A', clientSecretFile: '/f' } }, /credential: must match exactly one schema/],
    ['a client-secret without a secret', { ...base, credential: { type: 'client-secret', tenantId: TENANT, clientId: CLIENT } }, /credential/],
    ['an unknown credential type', { ...base, credential: { type: 'cli' } }, /credential\/type: must be one of/],
    ['no credential', { ...base }, /required property 'credential'/],
    ['plain http', { ...base, vaultUrl: 'http://contoso.vault.azure.net', credential: { type: 'default' } }, /vaultUrl/],
    ['a URL with a path', { ...base, vaultUrl: 'https://contoso.vault.azure.net/keys/kekbroker', credential: { type: 'default' } }, /vaultUrl/],
    ['a key name with a slash', { ...base, keyName: 'kek/1', credential: { type: 'default' } }, /keyName/],
    ['a timeout beyond 30 s', { ...base, timeoutMs: 60_000, credential: { type: 'default' } }, /timeoutMs/],
    ['unbounded retries', { ...base, retry: { maxRetries: 10 }, credential: { type: 'default' } }, /retry\/maxRetries/],
  ] as const) {
    it(`rejects ${why}, naming the path`, () => {
      const p = problems(structuredClone(section));
      assert.ok(p.some((line) => line.startsWith('/providers/azure-prod') && says.test(line)), p.join('\n'));
    });
  }
});

describe('fromConfig', () => {
  let emu: AzureKeyVaultEmulator;
  let dir: string;
  let closedPort: number;
  before(async () => {
    emu = await startAzureKeyVaultEmulator();
    await emu.createKey('kekbroker', 'RSA');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kekbroker-azure-'));
    await fs.writeFile(path.join(dir, 'ca.pem'), emu.caPem);
    await fs.writeFile(path.join(dir, 'secret'), 'file-secret\n', { mode: 0o600 });
    const srv = net.createServer();
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
    closedPort = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  after(async () => {
    await emu.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const emulatorConfig = (credential: Record<string, unknown>): AzureKeyVaultConfig => ({
      type: 'azure-keyvault',
      vaultUrl: emu.vaultUrl,
      keyName: 'kekbroker',
      tlsCaFile: path.join(dir, 'ca.pem'),
      disableChallengeResourceVerification: true,
      // The fake authority is a closed loopback port: the call gets as far as asking Entra ID for a token.
      credential: { type: 'client-secret', tenantId: emu.tenantId, clientId: CLIENT, authorityHost: `https://127.0.0.1:${closedPort}`, disableInstanceDiscovery: true, ...credential },
      retry: { maxRetries: 0 },
    });

  it('wires the CA file, challenge option and credential: the vault is trusted and asks for a token', async () => {
    for (const credential of [{ clientSecretFile: path.join(dir, 'secret') }, { clientSecretEnv: 'KEKBROKER_TEST_AZURE_SECRET' }]) {
      process.env['KEKBROKER_TEST_AZURE_SECRET'] = 'env-secret';
      const p = await fromConfig('azure-prod', emulatorConfig(credential));
      try {
        assert.equal(p.id, 'azure-prod');
        assert.equal(p.type, 'azure-keyvault');
        // Without the CA this would be a TLS failure; without the challenge option a resource mismatch.
        await assert.rejects(p.describe(AbortSignal.timeout(10_000)), (e: unknown) => isKekError(e) && e.code === 'unavailable' && /cannot reach Entra ID/.test(e.message));
      } finally {
        await p.close();
        delete process.env['KEKBROKER_TEST_AZURE_SECRET'];
      }
    }
  });

  it('a YAML config with the emulator credential gives a working provider (the docs example)', async () => {
    const file = path.join(dir, 'kekbroker.yaml');
    const text = [
      'grpc: { insecureLoopback: true }',
      'providers:',
      '  azure-dev:',
      '    type: azure-keyvault',
      `    vaultUrl: ${emu.vaultUrl}`,
      '    keyName: kekbroker',
      '    credential: { type: emulator }',
      '    tlsCaFile: ca.pem              # relative to the config file',
      '    disableChallengeResourceVerification: true',
      'keyrings: { default: { providers: [azure-dev] } }',
      'tenants: { dev: { keyrings: [default] } }',
    ].join('\n');
    const cfg = parseConfigText(text, file, { 'azure-keyvault': configSchema });
    const p = await fromConfig('azure-dev', cfg.providers['azure-dev'] as unknown as AzureKeyVaultConfig);
    try {
      const ctx = { tenant: 'dev', keyring: 'default', envelopeVersion: 1 };
      const seed = Buffer.alloc(32, 0x42);
      const w = await p.wrap(seed, ctx, AbortSignal.timeout(10_000));
      assert.match(w.keyVersionRef, /^azure:127\.0\.0\.1\/keys\/kekbroker\/[0-9a-f]{32}$/);
      assert.deepEqual(await p.unwrap(w, ctx, AbortSignal.timeout(10_000)), seed);
      await p.probe(AbortSignal.timeout(10_000));
    } finally {
      await p.close();
    }
  });

  it('refuses the emulator credential for a vault that is not on loopback', async () => {
    await assert.rejects(
      fromConfig('azure-prod', { type: 'azure-keyvault', vaultUrl: 'https://contoso.vault.azure.net', keyName: 'k', credential: { type: 'emulator' } }),
      (e: unknown) => isKekError(e) && e.code === 'invalid-input' && /loopback/.test(e.message),
    );
  });

  it('reports a missing secret env var or unreadable file at start, by name', async () => {
    await assert.rejects(fromConfig('azure-prod', emulatorConfig({ clientSecretEnv: 'KEKBROKER_TEST_UNSET_VAR' })), (e: unknown) =>
      isKekError(e) && e.code === 'invalid-input' && e.message.includes('KEKBROKER_TEST_UNSET_VAR'));
    await assert.rejects(fromConfig('azure-prod', { ...emulatorConfig({ clientSecretFile: path.join(dir, 'secret') }), tlsCaFile: path.join(dir, 'missing.pem') }), (e: unknown) =>
      isKekError(e) && e.code === 'invalid-input' && e.message.includes('tlsCaFile') && e.message.includes('ENOENT'));
  });
});

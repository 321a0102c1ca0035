/**
 * An Azure Key Vault emulator that the real `@azure/keyvault-keys` clients talk to over HTTPS, with fault
 * injection. Connections go through a TcpFront so that an outage resets sockets like a vanished endpoint.
 *
 * Clients need: the vault URL, a TokenCredential (any `{ getToken }`), `tlsOptions: { ca: caPem }`, and
 * `disableChallengeResourceVerification: true` (the challenge names vault.azure.net, the URL is 127.0.0.1).
 */
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import { FaultInjector } from '../faults';
import { TcpFront } from '../tcp-front';
import { createRequestHandler } from './routes';
import { makeEmulatorTls } from './tls';
import { Vault } from './vault';

export interface AzureKeyVaultEmulatorOptions {
  /** Public port (the TcpFront); 0 or absent picks a free one. */
  port?: number;
}

export interface AzureKeyVaultEmulator {
  /** `https://127.0.0.1:PORT`, no trailing slash. */
  readonly vaultUrl: string;
  readonly port: number;
  /** PEM of the CA that signed the server certificate: pass as `tlsOptions: { ca }`. */
  readonly caPem: string;
  /** Tenant GUID named in the 401 challenge (`authorization="https://login.microsoftonline.com/<tenant>"`). */
  readonly tenantId: string;
  readonly faults: FaultInjector;
  /** Call after adding fault rules: a global outage drops open connections at once. */
  onFaultsChanged(): void;
  /** Create a key (or a new version of it). RSA: 2048 (default), 3072, 4096; oct-HSM: 256. */
  createKey(name: string, kty: 'RSA' | 'oct-HSM', size?: number): Promise<{ kid: string; version: string }>;
  /** Disable every version of a key (crypto then answers 403 Forbidden / KeyDisabled). */
  disableKey(name: string): Promise<void>;
  enableKey(name: string): Promise<void>;
  /** Replace key_ops on every version (to test a key that does not permit wrapKey/unwrapKey). */
  setKeyOps(name: string, ops: string[]): Promise<void>;
  /** Answer 401 to requests bearing this token, as Key Vault does for an expired or foreign token. */
  rejectToken(token: string): void;
  close(): Promise<void>;
}

export async function startAzureKeyVaultEmulator(opts: AzureKeyVaultEmulatorOptions = {}): Promise<AzureKeyVaultEmulator> {
  const tls = await makeEmulatorTls();
  const vault = new Vault();
  const faults = new FaultInjector();
  const tenantId = randomUUID();
  const rejectedTokens = new Set<string>();
  const closing = new AbortController();
  const server = https.createServer({ cert: tls.cert, key: tls.key }, createRequestHandler({ vault, faults, tenantId, rejectedTokens, closing: closing.signal }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const front = new TcpFront(faults, typeof addr === 'object' && addr ? addr.port : 0);
  let port: number;
  try {
    port = await front.listen(opts.port ?? 0);
  } catch (e) {
    server.close();
    throw e;
  }
  const vaultUrl = `https://127.0.0.1:${port}`;

  return {
    vaultUrl,
    port,
    caPem: tls.caPem,
    tenantId,
    faults,
    onFaultsChanged() {
      if (faults.globalOutage) front.dropAll();
    },
    async createKey(name, kty, size) {
      const kv = await vault.create(name, { kty, size });
      return { kid: `${vaultUrl}/keys/${name}/${kv.version}`, version: kv.version };
    },
    async disableKey(name) {
      vault.setEnabled(name, false);
    },
    async enableKey(name) {
      vault.setEnabled(name, true);
    },
    async setKeyOps(name, ops) {
      vault.setKeyOps(name, ops);
    },
    rejectToken(token) {
      rejectedTokens.add(token);
    },
    async close() {
      closing.abort();
      await front.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A Google Cloud KMS emulator that the real `@google-cloud/kms` client talks to over plaintext gRPC on
 * 127.0.0.1. The gRPC server listens on an internal port behind a TcpFront, so that a global "outage"
 * fault really resets connections (what a client sees when the KMS endpoint goes away) instead of
 * answering with a status.
 *
 * Client options that work against it (see docs/providers/gcp-kms.md):
 *   { apiEndpoint: '127.0.0.1', port, sslCreds: grpc.credentials.createInsecure(), authClient: new PassThroughClient() }
 */
import * as grpc from '@grpc/grpc-js';
import type { Controllable } from '../control';
import { FaultInjector } from '../faults';
import { TcpFront } from '../tcp-front';
import { kmsServiceDefinition } from './protos';
import { kmsHandlers, type InjectedStatus, type ServiceState } from './service';
import { KmsStore } from './store';

export interface GcpKmsEmulatorOptions {
  /** Public port (default: a free one). */
  port?: number;
  /**
   * Versions created through the API stay PENDING_GENERATION this long before they become ENABLED, as
   * HSM keys do on the real service (default 0: ENABLED at once). `createKey` is never delayed.
   */
  generationDelayMs?: number;
}

export interface GcpKmsEmulator extends Controllable {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `127.0.0.1:PORT`: the gcp-kms provider's `endpoint` (with `insecureLoopback: true`). */
  readonly endpoint: string;
  readonly faults: FaultInjector;
  /** Counters for tests: calls the client cancelled while the emulator was still working on them. */
  readonly stats: { readonly cancelled: number };
  /** Drop open connections when a global outage starts (the control endpoint calls this). */
  onFaultsChanged(): void;
  /** Create (if needed) the key ring and an ENCRYPT_DECRYPT key with an ENABLED primary version 1. */
  createKey(project: string, location: string, keyRing: string, cryptoKey: string): Promise<string>;
  /** Disable every version of the key (Encrypt and Decrypt then fail with FAILED_PRECONDITION). */
  disableKey(keyName: string): Promise<void>;
  /** Enable every DISABLED version of the key again. */
  enableKey(keyName: string): Promise<void>;
  /** Enable or disable one CryptoKeyVersion (as UpdateCryptoKeyVersion would). */
  setVersionState(versionName: string, state: 'ENABLED' | 'DISABLED'): Promise<void>;
  /** Answer the next matching call(s) with this status instead (codes the fault kinds do not produce). */
  injectStatus(rule: InjectedStatus): void;
  close(): Promise<void>;
}

export async function startGcpKmsEmulator(opts: GcpKmsEmulatorOptions = {}): Promise<GcpKmsEmulator> {
  const store = new KmsStore({ generationDelayMs: opts.generationDelayMs ?? 0 });
  const faults = new FaultInjector();
  const state: ServiceState = { store, faults, injected: [], stats: { cancelled: 0 } };

  const server = new grpc.Server();
  server.addService(kmsServiceDefinition(), kmsHandlers(state));
  const internalPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
  const front = new TcpFront(faults, internalPort);
  let port: number;
  try {
    port = await front.listen(opts.port ?? 0);
  } catch (e) {
    server.forceShutdown();
    throw e;
  }

  const setAll = (keyName: string, from: string, to: 'ENABLED' | 'DISABLED'): void => {
    const key = store.getCryptoKey(keyName);
    for (const v of key.versions.values()) if (v.state === from) store.setState(`${keyName}/cryptoKeyVersions/${v.id}`, to);
  };

  return {
    host: '127.0.0.1',
    port,
    endpoint: `127.0.0.1:${port}`,
    faults,
    stats: state.stats,
    onFaultsChanged() {
      if (faults.globalOutage) front.dropAll();
    },
    async createKey(project, location, keyRing, cryptoKey) {
      const parent = `projects/${project}/locations/${location}`;
      const ring = `${parent}/keyRings/${keyRing}`;
      try {
        store.getKeyRing(ring);
      } catch {
        store.createKeyRing(parent, keyRing);
      }
      return store.createCryptoKey(ring, cryptoKey, { pending: false }).name;
    },
    async disableKey(keyName) {
      setAll(keyName, 'ENABLED', 'DISABLED');
    },
    async enableKey(keyName) {
      setAll(keyName, 'DISABLED', 'ENABLED');
    },
    async setVersionState(versionName, to) {
      store.setState(versionName, to);
    },
    injectStatus(rule) {
      state.injected.push({ ...rule });
    },
    async close() {
      await front.close();
      server.forceShutdown();
    },
  };
}

/**
 * gRPC handlers for `google.cloud.kms.v1.KeyManagementService`: the subset kekbroker and its tests use.
 * Every call first goes through the fault injector (operation = the RPC name, key = the resource name in
 * the request, so a rule's `key` may be any substring of it, e.g. the CryptoKey id):
 *   latency  → the answer waits (and stops waiting if the client cancels);
 *   throttle → RESOURCE_EXHAUSTED with ErrorInfo RATE_LIMIT_EXCEEDED and a RetryInfo of 1 s;
 *   error    → UNAVAILABLE, the code Google's APIs use for a transient server-side failure (and the one
 *              client libraries retry); other codes can be injected with `injectStatus`;
 *   outage   → global: the TCP front resets connections (see emulator.ts); per key: UNAVAILABLE;
 *   corrupt  → Encrypt/Decrypt answer with a wrong ciphertext_crc32c / plaintext_crc32c, i.e. a response
 *              damaged in transit that only the caller's CRC32C check can catch.
 * Methods not listed here answer UNIMPLEMENTED (grpc-js does that for us).
 */
import * as grpc from '@grpc/grpc-js';
import { delay, type ActiveFaults, type FaultInjector } from '../faults';
import { crc32c } from '@aws-crypto/crc32c';
import { RpcError, errorInfo, retryInfo, toServiceError } from './rpc-error';
import { cryptoKeyProto, versionName, versionProto, type KmsStore } from './store';

/** A status to answer instead of doing the work (for error-classification tests). */
export interface InjectedStatus {
  code: grpc.status;
  details: string;
  /** Only this RPC (e.g. "Encrypt"); every RPC when absent. */
  operation?: string;
  /** Only requests whose resource name contains this; all when absent. */
  key?: string;
  /** How many calls get it (default 1). */
  count?: number;
}

export interface ServiceState {
  store: KmsStore;
  faults: FaultInjector;
  injected: InjectedStatus[];
  /** Calls the client cancelled (abort or deadline) while the emulator was still working on them. */
  stats: { cancelled: number };
}

interface Int64Value {
  value?: string | number;
}
type Req = Record<string, unknown>;

const THROTTLE_MESSAGE =
  "Quota exceeded for quota metric 'Cryptographic requests' and limit 'Cryptographic requests per minute per region' " +
  "of service 'cloudkms.googleapis.com' for consumer 'project_number:000000000000'.";

function takeInjected(state: ServiceState, op: string, key: string): InjectedStatus | undefined {
  const i = state.injected.findIndex((r) => (r.operation === undefined || r.operation === op) && (r.key === undefined || key.includes(r.key)));
  if (i < 0) return undefined;
  const rule = state.injected[i] as InjectedStatus;
  rule.count = (rule.count ?? 1) - 1;
  if (rule.count <= 0) state.injected.splice(i, 1);
  return rule;
}

function unary(state: ServiceState, op: string, keyOf: (req: Req) => string, fn: (req: Req, faults: ActiveFaults) => Req): grpc.handleUnaryCall<Req, Req> {
  return (call, callback) => {
    const ac = new AbortController();
    let done = false;
    call.on('cancelled', () => {
      if (!done) state.stats.cancelled += 1;
      ac.abort();
    });
    const run = async (): Promise<Req | undefined> => {
      const key = keyOf(call.request);
      const f = state.faults.take(op, key);
      if (f.latencyMs > 0 && !(await delay(f.latencyMs, ac.signal))) return undefined; // the client went away
      const injected = takeInjected(state, op, key);
      if (injected) throw new RpcError(injected.code, injected.details);
      if (f.outage) throw new RpcError(grpc.status.UNAVAILABLE, 'Connection reset by peer (emulated outage for this key).');
      if (f.throttle) {
        throw new RpcError(grpc.status.RESOURCE_EXHAUSTED, THROTTLE_MESSAGE, [
          errorInfo('RATE_LIMIT_EXCEEDED', 'googleapis.com', { service: 'cloudkms.googleapis.com', quota_metric: 'cloudkms.googleapis.com/crypto_requests' }),
          retryInfo(1000),
        ]);
      }
      if (f.error) throw new RpcError(grpc.status.UNAVAILABLE, 'The service is currently unavailable.');
      return fn(call.request, f);
    };
    run().then(
      (res) => {
        done = true;
        if (res !== undefined) callback(null, res);
        else callback({ code: grpc.status.CANCELLED, details: 'Cancelled by the client.' });
      },
      (e: unknown) => {
        done = true;
        callback(toServiceError(e));
      },
    );
  };
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const bytes = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : Buffer.alloc(0));

/** Check an optional request CRC; true when it was given and matched (the response's verified_* flag). */
function verifyCrc(given: unknown, data: Buffer, field: string, dataField: string): boolean {
  const v = (given as Int64Value | null | undefined)?.value;
  if (v === undefined || v === null || v === '') return false;
  if (Number(v) !== crc32c(data)) {
    // The text Cloud KMS uses; callers treat it as damage in transit and retry.
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `The checksum in field ${field} did not match the data in field ${dataField}.`);
  }
  return true;
}

const crcValue = (data: Buffer, corrupt: boolean): Int64Value => ({ value: String((crc32c(data) ^ (corrupt ? 1 : 0)) >>> 0) });

export function kmsHandlers(state: ServiceState): grpc.UntypedServiceImplementation {
  const { store } = state;
  const name = (r: Req): string => str(r.name);
  const parent = (r: Req): string => str(r.parent);
  return {
    createKeyRing: unary(state, 'CreateKeyRing', (r) => `${parent(r)}/keyRings/${str(r.keyRingId)}`, (r) => ({ ...store.createKeyRing(parent(r), str(r.keyRingId)) })),
    getKeyRing: unary(state, 'GetKeyRing', name, (r) => ({ ...store.getKeyRing(name(r)) })),

    createCryptoKey: unary(state, 'CreateCryptoKey', (r) => `${parent(r)}/cryptoKeys/${str(r.cryptoKeyId)}`, (r) => {
      const spec = (r.cryptoKey ?? {}) as { purpose?: string; versionTemplate?: { algorithm?: string } | null; labels?: Record<string, string> };
      if (spec.purpose !== 'ENCRYPT_DECRYPT') {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, `The emulator supports purpose ENCRYPT_DECRYPT only, got ${spec.purpose ?? 'none'}.`);
      }
      const algorithm = spec.versionTemplate?.algorithm;
      if (algorithm && algorithm !== 'GOOGLE_SYMMETRIC_ENCRYPTION' && algorithm !== 'CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED') {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, `The emulator supports GOOGLE_SYMMETRIC_ENCRYPTION only, got ${algorithm}.`);
      }
      const opts = { skipInitialVersion: r.skipInitialVersionCreation === true, ...(spec.labels ? { labels: spec.labels } : {}) };
      return cryptoKeyProto(store.createCryptoKey(parent(r), str(r.cryptoKeyId), opts));
    }),
    getCryptoKey: unary(state, 'GetCryptoKey', name, (r) => cryptoKeyProto(store.getCryptoKey(name(r)))),

    createCryptoKeyVersion: unary(state, 'CreateCryptoKeyVersion', parent, (r) => {
      const { key, version } = store.createVersion(parent(r));
      return versionProto(key, version);
    }),
    getCryptoKeyVersion: unary(state, 'GetCryptoKeyVersion', name, (r) => {
      const { key, version } = store.getVersion(name(r));
      return versionProto(key, version);
    }),
    updateCryptoKeyPrimaryVersion: unary(state, 'UpdateCryptoKeyPrimaryVersion', name, (r) =>
      cryptoKeyProto(store.setPrimary(name(r), str(r.cryptoKeyVersionId))),
    ),
    updateCryptoKeyVersion: unary(state, 'UpdateCryptoKeyVersion', (r) => str((r.cryptoKeyVersion as Req | null)?.name), (r) => {
      const v = (r.cryptoKeyVersion ?? {}) as { name?: string; state?: string };
      const paths = ((r.updateMask ?? {}) as { paths?: string[] }).paths ?? [];
      if (paths.length !== 1 || paths[0] !== 'state') throw new RpcError(grpc.status.INVALID_ARGUMENT, 'The emulator updates update_mask "state" only.');
      if (v.state !== 'ENABLED' && v.state !== 'DISABLED') throw new RpcError(grpc.status.INVALID_ARGUMENT, 'state may only be set to ENABLED or DISABLED.');
      const { key, version } = store.setState(str(v.name), v.state);
      return versionProto(key, version);
    }),
    destroyCryptoKeyVersion: unary(state, 'DestroyCryptoKeyVersion', name, (r) => {
      const { key, version } = store.setState(name(r), 'DESTROY_SCHEDULED');
      return versionProto(key, version);
    }),
    restoreCryptoKeyVersion: unary(state, 'RestoreCryptoKeyVersion', name, (r) => {
      const { key, version } = store.getVersion(name(r));
      if (version.state !== 'DESTROY_SCHEDULED') throw new RpcError(grpc.status.FAILED_PRECONDITION, `${versionName(key, version)} is not scheduled for destruction.`);
      store.setState(name(r), 'DISABLED');
      return versionProto(key, version);
    }),

    encrypt: unary(state, 'Encrypt', name, (r, f) => {
      const plaintext = bytes(r.plaintext);
      const aad = bytes(r.additionalAuthenticatedData);
      const verifiedPlaintextCrc32c = verifyCrc(r.plaintextCrc32c, plaintext, 'plaintext_crc32c', 'plaintext');
      const verifiedAdditionalAuthenticatedDataCrc32c = verifyCrc(
        r.additionalAuthenticatedDataCrc32c, aad, 'additional_authenticated_data_crc32c', 'additional_authenticated_data');
      const out = store.encrypt(name(r), plaintext, aad);
      return {
        name: out.versionName,
        ciphertext: out.ciphertext,
        ciphertextCrc32c: crcValue(out.ciphertext, f.corrupt),
        verifiedPlaintextCrc32c,
        verifiedAdditionalAuthenticatedDataCrc32c,
        protectionLevel: 'SOFTWARE',
      };
    }),
    decrypt: unary(state, 'Decrypt', name, (r, f) => {
      const ciphertext = bytes(r.ciphertext);
      const aad = bytes(r.additionalAuthenticatedData);
      verifyCrc(r.ciphertextCrc32c, ciphertext, 'ciphertext_crc32c', 'ciphertext');
      verifyCrc(r.additionalAuthenticatedDataCrc32c, aad, 'additional_authenticated_data_crc32c', 'additional_authenticated_data');
      const out = store.decrypt(name(r), ciphertext, aad);
      return { plaintext: out.plaintext, plaintextCrc32c: crcValue(out.plaintext, f.corrupt), usedPrimary: out.usedPrimary, protectionLevel: 'SOFTWARE' };
    }),
  };
}

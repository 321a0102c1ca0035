/**
 * The only file that imports `@google-cloud/kms`: builds the real client and adapts it to `GcpKmsClient`.
 *
 * Three choices matter here (see /work/shared/research/cloud-sdks.md §2):
 * - No SDK retries (`retry: null`) and an explicit per-RPC timeout on every call. The SDK's defaults
 *   retry UNAVAILABLE for up to 10 minutes; our retries live in retry.ts, inside the caller's deadline.
 * - Cancellation. The public methods (`client.encrypt(...)`) return a plain promise, so an abort could only
 *   stop *waiting*. `innerApiCalls.<method>` returns gax's cancellable promise; cancelling it cancels the
 *   HTTP/2 stream, so the KMS stops working on a call nobody waits for. We add the
 *   `x-goog-request-params` routing header ourselves, exactly as the public methods do.
 * - Auth. Production uses Application Default Credentials (workload identity on GKE) or a credentials file.
 *   Against an emulator (`insecure`), we pass plaintext channel credentials *and* a PassThroughClient:
 *   without an explicit auth client, gax still probes the GCE metadata server at start-up.
 */
import { KeyManagementServiceClient } from '@google-cloud/kms';
import * as grpc from '@grpc/grpc-js';
import { PassThroughClient } from 'google-auth-library';
import type {
  CallSettings, DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, GcpKmsClient, KmsCryptoKey, KmsCryptoKeyVersion,
} from './client';
import { ClientInitError } from './transport-errors';

export interface SdkClientOptions {
  /** `host:port` of the Cloud KMS API. Default: the SDK's own (cloudkms.googleapis.com:443). */
  endpoint?: string;
  /** Plaintext gRPC and no credentials: only for an emulator on the loopback interface. */
  insecure?: boolean;
  /** Service-account or external-account (workload identity federation) JSON. Default: ADC. */
  credentialsFile?: string;
}

type CancellablePromise<T> = Promise<T> & { cancel(): void };
type InnerCall = (req: unknown, opts: unknown) => CancellablePromise<[unknown, ...unknown[]]>;

export function abortError(): Error {
  return new DOMException('GCP KMS call abandoned: deadline exceeded or caller cancelled', 'AbortError');
}

export function splitEndpoint(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  const port = Number(endpoint.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`endpoint must be host:port, got "${endpoint}"`);
  return { host: endpoint.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port };
}

export function createSdkClient(opts: SdkClientOptions = {}): GcpKmsClient {
  // A plain record: gax's ClientOptions types its authClient from its own (older) google-auth-library copy.
  const clientOpts: Record<string, unknown> = {
    fallback: false, // gRPC: REST fallback errors surface as HTTP codes (research §2.7)
    // While a channel waits to reconnect, grpc-js fails every call at once ("No connection established").
    // gax sets a 1 s initial backoff and grpc-js grows it to 2 minutes during a long outage: with ~2 s
    // caller deadlines, every call would fail that long after the KMS is back. A reconnect attempt every
    // 250 ms at most is cheap, and retry.ts pauses long enough (≥ 450 ms over 3 attempts) to span it.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 250,
  };
  if (opts.endpoint) {
    const { host, port } = splitEndpoint(opts.endpoint);
    clientOpts.apiEndpoint = host.includes(':') ? `[${host}]` : host; // gax joins host + ':' + port
    clientOpts.port = port;
  }
  if (opts.insecure) {
    clientOpts.sslCreds = grpc.credentials.createInsecure();
    clientOpts.authClient = new PassThroughClient();
  } else if (opts.credentialsFile) {
    clientOpts.keyFilename = opts.credentialsFile;
  }
  // gax caches the promise of its first initialize() even when it failed (say, the metadata server was
  // briefly down at start): keep the client only once it initialized, and build a fresh one otherwise.
  let sdk: KeyManagementServiceClient | undefined;
  let ready: Promise<KeyManagementServiceClient> | undefined;
  const client = (): Promise<KeyManagementServiceClient> => {
    if (!ready) {
      const c = new KeyManagementServiceClient(clientOpts as ConstructorParameters<typeof KeyManagementServiceClient>[0]);
      sdk = c;
      ready = c.initialize().then(
        () => c,
        (e: unknown) => {
          ready = undefined;
          sdk = undefined;
          c.close().catch(() => undefined);
          throw new ClientInitError(e instanceof Error ? e.message : String(e), { cause: e });
        },
      );
    }
    return ready;
  };

  async function invoke<T>(method: string, req: object, routingName: string, call: CallSettings): Promise<T> {
    if (call.signal.aborted) throw abortError();
    const c = await raceAbort(client(), call.signal);
    const fn = c.innerApiCalls[method] as InnerCall | undefined;
    if (!fn) throw new Error(`the Cloud KMS client has no method ${method}`);
    const p = fn(req, {
      timeout: call.timeoutMs,
      retry: null,
      otherArgs: { headers: { 'x-goog-request-params': `name=${encodeURIComponent(routingName)}` } },
    });
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        p.cancel();
        reject(abortError());
      };
      call.signal.addEventListener('abort', onAbort, { once: true });
      // Both outcomes are handled here, so the chain itself cannot reject.
      void p
        .then(
          ([res]) => resolve(res as T),
          (e: unknown) => reject(e as Error), // gax rejects with GoogleError / grpc ServiceError
        )
        .finally(() => call.signal.removeEventListener('abort', onAbort));
    });
  }

  return {
    encrypt: (req: EncryptRequest, call) => invoke<EncryptResponse>('encrypt', req, req.name, call),
    decrypt: (req: DecryptRequest, call) => invoke<DecryptResponse>('decrypt', req, req.name, call),
    getCryptoKey: (req, call) => invoke<KmsCryptoKey>('getCryptoKey', req, req.name, call),
    getCryptoKeyVersion: (req, call) => invoke<KmsCryptoKeyVersion>('getCryptoKeyVersion', req, req.name, call),
    createCryptoKeyVersion: (req, call) => invoke<KmsCryptoKeyVersion>('createCryptoKeyVersion', { ...req, cryptoKeyVersion: {} }, req.parent, call),
    updateCryptoKeyPrimaryVersion: (req, call) => invoke<KmsCryptoKey>('updateCryptoKeyPrimaryVersion', req, req.name, call),
    async close() {
      const c = sdk;
      sdk = undefined;
      ready = undefined;
      await c?.close();
    },
  };
}

async function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([p, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

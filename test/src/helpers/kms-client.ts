/**
 * A KMS v2 client that behaves like kube-apiserver's (k8s.io/apiserver kmsv2/grpc_service.go): unix
 * socket, insecure credentials, authority "localhost", WaitForReady, and a 3 s timeout on every call.
 */
import * as grpc from '@grpc/grpc-js';
import { kmsV2, type DecryptRequest, type EncryptResponse, type KeyManagementServiceClient, type StatusResponse } from '@kekbroker/proto';

export const APISERVER_TIMEOUT_MS = 3000;

export class KmsClient {
  readonly client: KeyManagementServiceClient;

  constructor(socket: string) {
    const Ctor = kmsV2().KeyManagementService;
    this.client = new Ctor(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'localhost' });
  }

  private call<Req, Res>(method: 'Status' | 'Encrypt' | 'Decrypt', req: Req, timeoutMs = APISERVER_TIMEOUT_MS): Promise<Res> {
    return new Promise((resolve, reject) => {
      const fn = (this.client as unknown as Record<string, (r: Req, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method] as (
        r: Req, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void;
      fn.call(this.client, req, { deadline: Date.now() + timeoutMs, waitForReady: true } as grpc.CallOptions, (e, r) => (e ? reject(e) : resolve(r)));
    });
  }

  status(timeoutMs?: number): Promise<StatusResponse & { version: string; healthz: string; key_id: string }> {
    return this.call('Status', {}, timeoutMs);
  }

  encrypt(plaintext: Buffer, uid = 'uid'): Promise<Required<Pick<EncryptResponse, 'key_id'>> & { ciphertext: Buffer; annotations: Record<string, Buffer> }> {
    return this.call('Encrypt', { plaintext, uid });
  }

  decrypt(req: DecryptRequest): Promise<{ plaintext: Buffer }> {
    return this.call('Decrypt', { uid: 'uid', ...req });
  }

  close(): void {
    this.client.close();
  }
}

/** Await a rejection and return the gRPC error. */
export async function grpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('expected a gRPC error, got success');
}

/**
 * gRPC errors as Cloud KMS sends them: a status code, a message, and for some codes a `google.rpc.Status`
 * with typed details in the `grpc-status-details-bin` trailer (google-gax decodes it into
 * `err.statusDetails`, `err.reason`, `err.domain`). The two detail messages we need are encoded by hand
 * (a dozen lines of protobuf wire format) rather than pulling protobufjs in as a direct dependency.
 */
import * as grpc from '@grpc/grpc-js';

export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    /** Encoded `google.protobuf.Any` messages for `google.rpc.Status.details`. */
    readonly anyDetails: Buffer[] = [],
  ) {
    super(details);
  }

  toServiceError(): Partial<grpc.StatusObject> {
    const metadata = new grpc.Metadata();
    if (this.anyDetails.length > 0) metadata.set('grpc-status-details-bin', encodeStatus(this.code, this.details, this.anyDetails));
    return { code: this.code, details: this.details, metadata };
  }
}

/** Anything thrown by a handler that is not an RpcError is a bug in the emulator: INTERNAL. */
export function toServiceError(e: unknown): Partial<grpc.StatusObject> {
  if (e instanceof RpcError) return e.toServiceError();
  return { code: grpc.status.INTERNAL, details: `emulator bug: ${(e as Error)?.message ?? String(e)}` };
}

// --- protobuf wire format (just what google.rpc.Status and two detail messages need) ---

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

function field(no: number, value: number | string | Buffer): Buffer {
  if (typeof value === 'number') return Buffer.concat([varint(no << 3), varint(value)]);
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([varint((no << 3) | 2), varint(bytes.length), bytes]);
}

function any(typeName: string, value: Buffer): Buffer {
  return Buffer.concat([field(1, `type.googleapis.com/${typeName}`), field(2, value)]);
}

function encodeStatus(code: number, message: string, details: Buffer[]): Buffer {
  return Buffer.concat([field(1, code), field(2, message), ...details.map((d) => field(3, d))]);
}

/** google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; } */
export function retryInfo(delayMs: number): Buffer {
  const seconds = Math.floor(delayMs / 1000);
  const nanos = (delayMs % 1000) * 1_000_000;
  const duration = Buffer.concat([seconds ? field(1, seconds) : Buffer.alloc(0), nanos ? field(2, nanos) : Buffer.alloc(0)]);
  return any('google.rpc.RetryInfo', field(1, duration));
}

/** google.rpc.ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; } */
export function errorInfo(reason: string, domain: string, metadata: Record<string, string> = {}): Buffer {
  const entries = Object.entries(metadata).map(([k, v]) => field(3, Buffer.concat([field(1, k), field(2, v)])));
  return any('google.rpc.ErrorInfo', Buffer.concat([field(1, reason), field(2, domain), ...entries]));
}

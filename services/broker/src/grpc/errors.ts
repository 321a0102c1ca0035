/** One mapping from anything thrown to a gRPC status; internals never leak (nice-grpc's rule). */
import type * as grpc from '@grpc/grpc-js';
import { toKekError, type KekError } from '@kekbroker/core';

export function toGrpcError(e: unknown): Partial<grpc.ServiceError> {
  const err = toKekError(e);
  return { code: err.grpcStatus, details: callerMessage(err) };
}

/** Internal errors reach callers only as the public form BrokerService made (with a correlation id). */
export function callerMessage(err: KekError): string {
  return err.code === 'internal' && !/\(correlation id [0-9a-f]+\)$/.test(err.message) ? 'internal error (see broker log)' : err.message;
}

/** Milliseconds until the call's deadline, or undefined when the caller set none. */
export function remainingMs(call: { getDeadline(): grpc.Deadline }): number | undefined {
  const d = call.getDeadline();
  const t = d instanceof Date ? d.getTime() : d;
  if (!Number.isFinite(t)) return undefined;
  return Math.max(0, t - Date.now());
}

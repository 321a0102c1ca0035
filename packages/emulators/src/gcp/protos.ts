/**
 * The Cloud KMS service definition, loaded from the protos that ship inside the npm packages (no download,
 * no vendored copy that could drift from the SDK). Paths are resolved through the packages' entry points:
 * google-gax has an `exports` map, so `google-gax/package.json` cannot be resolved, but its main file can.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

function protoDirs(): string[] {
  // @google-cloud/kms main = build/src/index.js → build/protos
  const kms = path.resolve(path.dirname(require.resolve('@google-cloud/kms')), '../protos');
  // google-gax main = build/src/index.js → build/protos (google/api, google/rpc, google/longrunning, …)
  const gax = path.resolve(path.dirname(require.resolve('google-gax')), '../protos');
  return [kms, gax];
}

let cached: grpc.GrpcObject | undefined;

/**
 * The loaded `google.cloud.kms.v1` package. Options mirror what the SDK sees on the wire: lowerCamel field
 * names, int64 as strings (Int64Value CRCs, Timestamp seconds), enums as names, defaults filled in.
 */
export function kmsV1(): grpc.GrpcObject {
  if (cached) return cached;
  const def = protoLoader.loadSync('google/cloud/kms/v1/service.proto', {
    includeDirs: protoDirs(),
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const root = grpc.loadPackageDefinition(def) as unknown as { google: { cloud: { kms: { v1: grpc.GrpcObject } } } };
  cached = root.google.cloud.kms.v1;
  return cached;
}

/** The `KeyManagementService` client constructor (used by the emulator's own wire tests). */
export function kmsServiceClient(): grpc.ServiceClientConstructor {
  return kmsV1().KeyManagementService as grpc.ServiceClientConstructor;
}

export function kmsServiceDefinition(): grpc.ServiceDefinition {
  return kmsServiceClient().service;
}

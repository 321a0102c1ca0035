/**
 * Loads the wire contracts at runtime (proto-loader; the same options as the type generator, so the
 * generated types describe the loaded objects exactly) and re-exports the generated types.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as KmsV2Grpc } from './generated/api';
import type { ProtoGrpcType as BrokerGrpc } from './generated/broker';

export const PROTO_DIR = path.join(__dirname, 'proto');

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] };

function load<T>(file: string): T {
  const def = protoLoader.loadSync(path.join(PROTO_DIR, file), LOADER_OPTIONS);
  return grpc.loadPackageDefinition(def) as unknown as T;
}

let kms: KmsV2Grpc | undefined;
let broker: BrokerGrpc | undefined;

/** The Kubernetes KMS v2 package `v2` (service `v2.KeyManagementService`). */
export function kmsV2(): KmsV2Grpc['v2'] {
  kms ??= load<KmsV2Grpc>('k8s/kms/v2/api.proto');
  return kms.v2;
}

/** The broker package `kekbroker.v1` (service `kekbroker.v1.KekBroker`). */
export function brokerV1(): BrokerGrpc['kekbroker']['v1'] {
  broker ??= load<BrokerGrpc>('kekbroker/v1/broker.proto');
  return broker.kekbroker.v1;
}

export type { KeyManagementServiceHandlers } from './generated/v2/KeyManagementService';
export type { StatusResponse } from './generated/v2/StatusResponse';
export type { EncryptRequest__Output, EncryptRequest } from './generated/v2/EncryptRequest';
export type { EncryptResponse } from './generated/v2/EncryptResponse';
export type { DecryptRequest__Output, DecryptRequest } from './generated/v2/DecryptRequest';
export type { DecryptResponse } from './generated/v2/DecryptResponse';
export type { KeyManagementServiceClient } from './generated/v2/KeyManagementService';
export type { KekBrokerHandlers, KekBrokerClient } from './generated/kekbroker/v1/KekBroker';
export type { WrapRequest, WrapRequest__Output } from './generated/kekbroker/v1/WrapRequest';
export type { WrapResponse, WrapResponse__Output } from './generated/kekbroker/v1/WrapResponse';
export type { UnwrapRequest, UnwrapRequest__Output } from './generated/kekbroker/v1/UnwrapRequest';
export type { UnwrapResponse, UnwrapResponse__Output } from './generated/kekbroker/v1/UnwrapResponse';
export type { SessionRequest, SessionRequest__Output } from './generated/kekbroker/v1/SessionRequest';
export type { SessionResponse, SessionResponse__Output } from './generated/kekbroker/v1/SessionResponse';
export type { KeyringStatus, KeyringStatus__Output } from './generated/kekbroker/v1/KeyringStatus';
export type { WatchStatusRequest, WatchStatusRequest__Output } from './generated/kekbroker/v1/WatchStatusRequest';
export { acceptPreserialized, serializeMessage } from './preserialize';

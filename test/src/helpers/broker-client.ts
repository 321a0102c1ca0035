/** A direct kekbroker.v1 client (unary calls), for tests that bypass the shim. */
import * as grpc from '@grpc/grpc-js';
import { brokerV1, type KekBrokerClient } from '@kekbroker/proto';

export function brokerClient(port: number, creds?: { credentials: grpc.ChannelCredentials; serverName?: string }): KekBrokerClient {
  const Ctor = brokerV1().KekBroker;
  const opts: grpc.ChannelOptions = creds?.serverName ? { 'grpc.ssl_target_name_override': creds.serverName } : {};
  return new Ctor(`127.0.0.1:${port}`, creds?.credentials ?? grpc.credentials.createInsecure(), opts);
}

export function tenantMd(tenant?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  if (tenant) md.set('x-kekbroker-tenant', tenant);
  return md;
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Res) => void) => unknown;

export function unary<Req, Res>(client: KekBrokerClient, method: 'Wrap' | 'Unwrap', req: Req, md = new grpc.Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Unary<Req, Res>>)[method] as Unary<Req, Res>;
    fn.call(client, req, md, { deadline: Date.now() + 3000 }, (e, r) => (e ? reject(e) : resolve(r as Res)));
  });
}

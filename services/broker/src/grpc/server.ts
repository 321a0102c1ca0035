/** The gRPC listener: mTLS with a client CA in production, plaintext on loopback only in dev mode. */
import { promises as fs } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { acceptPreserialized, brokerV1 } from '@kekbroker/proto';
import type { BrokerConfig } from '@kekbroker/config';
import { createHandlers, type HandlerDeps } from './handlers';

/** 1 MiB plaintext (transit) plus envelope overhead and framing. */
const MAX_MESSAGE_BYTES = 1024 * 1024 + 64 * 1024;

export async function serverCredentials(cfg: BrokerConfig): Promise<grpc.ServerCredentials> {
  const tls = cfg.grpc.tls;
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const [ca, cert, key] = await Promise.all([fs.readFile(tls.clientCaFile), fs.readFile(tls.certFile), fs.readFile(tls.keyFile)]);
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], true);
}

export async function startGrpcServer(cfg: BrokerConfig, deps: HandlerDeps): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    // Detect dead shims (and let shims detect us) on long-lived Session/WatchStatus streams.
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    // channelz keeps per-call tracing state nobody reads here; it shows in CPU profiles of the hot path.
    'grpc.enable_channelz': 0,
  });
  // Unwrap answers are serialised by their handler so it can zero the plaintext at once (core/secrets.ts).
  server.addService(acceptPreserialized(brokerV1().KekBroker.service), createHandlers(deps));
  const creds = await serverCredentials(cfg);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(cfg.grpc.listen, creds, (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { server, port };
}

export function stopGrpcServer(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

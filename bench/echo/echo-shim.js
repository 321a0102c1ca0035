// Baseline hop 1: a bare grpc-js KMS v2 server on a unix socket that forwards Decrypt as one unary
// call to the echo broker: the simplest possible two-hop plugin, with nothing kekbroker adds.
'use strict';
const grpc = require('@grpc/grpc-js');
const { brokerV1, kmsV2 } = require('@kekbroker/proto');

const [socket, port] = process.argv.slice(2);
const Broker = brokerV1().KekBroker;
const client = new Broker(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
const server = new grpc.Server();
server.addService(kmsV2().KeyManagementService.service, {
  Status: (_call, cb) => cb(null, { version: 'v2', healthz: 'ok', key_id: 'echo' }),
  Encrypt: (call, cb) => cb(null, { ciphertext: call.request.plaintext, key_id: 'echo', annotations: {} }),
  Decrypt: (call, cb) =>
    client.Unwrap({ keyring: 'default', ciphertext: call.request.ciphertext, key_id: call.request.key_id }, { deadline: Date.now() + 2500 }, (e, r) =>
      e ? cb(e) : cb(null, { plaintext: r.plaintext }),
    ),
});
server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => {
  if (e) throw e;
});
process.on('SIGTERM', () => server.forceShutdown());

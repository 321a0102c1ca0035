// Baseline hop 2: a bare grpc-js server implementing kekbroker.v1 Unwrap as an echo (no crypto, no cache).
'use strict';
const grpc = require('@grpc/grpc-js');
const { brokerV1 } = require('@kekbroker/proto');

const server = new grpc.Server();
server.addService(brokerV1().KekBroker.service, {
  Unwrap: (call, cb) => cb(null, { plaintext: call.request.ciphertext.subarray(0, 32), key_id: call.request.key_id }),
  Wrap: (call, cb) => cb(null, { ciphertext: call.request.plaintext, key_id: 'echo' }),
  Session: (call) => call.on('data', (r) => call.write({ id: r.id, unwrap: { plaintext: r.unwrap.ciphertext.subarray(0, 32) } })),
  WatchStatus: (call) => call.end(),
});
server.bindAsync(`127.0.0.1:${process.argv[2]}`, grpc.ServerCredentials.createInsecure(), (e) => {
  if (e) throw e;
});
process.on('SIGTERM', () => server.forceShutdown());

// A one-process KMS v2 server that answers Decrypt itself with the first 32 bytes of the ciphertext (so every
// answer can be checked), on one of two server layers (argv: grpc-js|h2 SOCKET):
//  - grpc-js: @grpc/grpc-js, as the kms-shim serves kube-apiserver;
//  - h2: a bare unary gRPC server on node:http2 (request body, 5-byte frame, the same protobuf codec; no
//    deadline, no validation, no limits): the floor under any server written on node:http2.
// Both decode the request and encode the answer with the same generated codec, so the difference between them
// is the server layer alone (bench/server-floor.js).
'use strict';
const fs = require('node:fs');
const http2 = require('node:http2');
const grpc = require('@grpc/grpc-js');
const { kmsV2 } = require('@kekbroker/proto');

const [kind, socket] = process.argv.slice(2);
const decrypt = kmsV2().KeyManagementService.service.Decrypt;
const answer = (req) => ({ plaintext: req.ciphertext.subarray(0, 32) });

if (kind === 'grpc-js') {
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  server.addService({ Decrypt: decrypt }, { Decrypt: (call, cb) => cb(null, answer(call.request)) });
  server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => {
    if (e) throw e;
  });
  process.on('SIGTERM', () => server.forceShutdown());
} else if (kind === 'h2') {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    if (headers[':path'] !== decrypt.path) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'unimplemented' }, { endStream: true });
      return;
    }
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      const out = decrypt.responseSerialize(answer(decrypt.requestDeserialize(body.subarray(5, 5 + body.readUInt32BE(1)))));
      const framed = Buffer.alloc(5 + out.length);
      framed.writeUInt32BE(out.length, 1);
      out.copy(framed, 5);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(framed);
    });
  });
  fs.rmSync(socket, { force: true });
  server.listen(socket);
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
} else {
  console.error('usage: local-kms-server.js grpc-js|h2 SOCKET');
  process.exit(2);
}

// A minimal gRPC unary client on node:http2 for the KMS v2 benchmark: one HTTP/2 connection to the unix
// socket, one stream per call, length-prefixed protobuf, grpc-status from the trailers. It does what a Go
// client (kube-apiserver) does on the wire at a fraction of grpc-js's CPU per call, so the load generator is
// less of the bound on a shared 2-vCPU box (BENCH_KMS_CLIENT=h2). Unary calls only; no retries, no
// compression, no keepalive.
'use strict';
const http2 = require('node:http2');
const net = require('node:net');

function h2GrpcClient(socketPath, service) {
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(socketPath) });
  session.on('error', () => undefined); // each call reports its own failure
  const call = (method, req, timeoutMs = 3000) => new Promise((resolve, reject) => {
    const m = service[method];
    const msg = m.requestSerialize(req);
    const frame = Buffer.allocUnsafe(5 + msg.length);
    frame[0] = 0;
    frame.writeUInt32BE(msg.length, 1);
    msg.copy(frame, 5);
    const stream = session.request({
      ':method': 'POST', ':path': m.path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': `${timeoutMs}m`,
    });
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('trailers', (t) => { stream.grpcStatus = Number(t['grpc-status']); stream.grpcMessage = t['grpc-message']; });
    stream.on('response', (h) => { if (h['grpc-status'] !== undefined) stream.grpcStatus = Number(h['grpc-status']); });
    stream.on('error', reject);
    stream.on('close', () => {
      if (stream.grpcStatus !== 0) return reject(Object.assign(new Error(`grpc-status ${stream.grpcStatus}: ${stream.grpcMessage ?? ''}`), { code: stream.grpcStatus }));
      const body = Buffer.concat(chunks);
      resolve(m.responseDeserialize(body.subarray(5, 5 + body.readUInt32BE(1))));
    });
    stream.end(frame);
  });
  return { call, close: () => session.close() };
}

module.exports = { h2GrpcClient };

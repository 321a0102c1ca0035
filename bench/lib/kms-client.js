// A grpc-js KMS v2 client on a plugin's unix socket, for the benchmarks' set-up calls and their grpc-js load
// generator: `call(method, request)` resolves with the answer, 3 s deadline per call.
'use strict';
const grpc = require('@grpc/grpc-js');
const { kmsV2 } = require('@kekbroker/proto');

/** `waitForReady`: a call waits for the socket to appear instead of failing at once (a plugin still starting). */
function kmsV2Client(socket, { waitForReady = false } = {}) {
  const C = kmsV2().KeyManagementService;
  const c = new C(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'localhost' });
  const call = (method, req) => new Promise((res, rej) => c[method](req, { deadline: Date.now() + 3000, waitForReady }, (e, r) => (e ? rej(e) : res(r))));
  return { call, close: () => c.close() };
}

module.exports = { kmsV2Client };

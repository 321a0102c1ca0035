// Baseline for the cold path: a bare single-cloud KMS v2 plugin, as each cloud ships its own. A grpc-js
// server on a unix socket whose Decrypt is one AWS KMS Decrypt through the same provider code and SDK client
// as the broker's (no shim, no broker, no envelope, no cache). Its ciphertext is the provider's wrap as JSON
// ({ keyVersionRef, wrapped: base64 }). Config: argv[2] the socket, BENCH_AWS_CFG the provider config (JSON).
'use strict';
const grpc = require('@grpc/grpc-js');
const { kmsV2 } = require('@kekbroker/proto');
const { fromConfig } = require('@kekbroker/provider-aws-kms');

const [socket] = process.argv.slice(2);
const CTX = { tenant: 'dev', keyring: 'default', envelopeVersion: 1 };

Promise.resolve(fromConfig('aws', JSON.parse(process.env.BENCH_AWS_CFG))).then((provider) => {
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  server.addService(kmsV2().KeyManagementService.service, {
    Status: (_call, cb) => cb(null, { version: 'v2', healthz: 'ok', key_id: 'aws' }),
    Encrypt: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'the baseline only decrypts' }),
    Decrypt: (call, cb) => {
      let w;
      try {
        const j = JSON.parse(call.request.ciphertext.toString('utf8'));
        w = { keyVersionRef: j.keyVersionRef, wrapped: Buffer.from(j.wrapped, 'base64') };
      } catch {
        return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'not a baseline ciphertext' });
      }
      provider.unwrap(w, CTX, AbortSignal.timeout(3000)).then((k) => cb(null, { plaintext: k }), (e) => cb({ code: grpc.status.UNAVAILABLE, details: String(e.message) }));
    },
  });
  server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => {
    if (e) throw e;
  });
  process.on('SIGTERM', () => server.forceShutdown());
});

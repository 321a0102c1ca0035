// Baseline for the transit benchmark: a bare fastify process whose transit-shaped routes echo the JSON body
// back in Vault's envelope (no auth, no crypto, no cache): what any JSON-over-HTTP service costs.
'use strict';
const Fastify = require('fastify');

const app = Fastify({ logger: false, bodyLimit: 32 * 1024 * 1024 });
const wrap = (data) => ({ request_id: 'echo', lease_id: '', renewable: false, lease_duration: 0, data, wrap_info: null, warnings: null, auth: null, mount_type: 'transit' });
app.post('/v1/transit/encrypt/:name', async (req) => {
  const b = req.body;
  if (b.batch_input) return wrap({ batch_results: b.batch_input.map((i) => ({ ciphertext: i.plaintext, key_version: 1 })) });
  return wrap({ ciphertext: b.plaintext, key_version: 1 });
});
app.post('/v1/transit/decrypt/:name', async (req) => {
  const b = req.body;
  if (b.batch_input) return wrap({ batch_results: b.batch_input.map((i) => ({ plaintext: i.ciphertext })) });
  return wrap({ plaintext: b.ciphertext });
});
app.listen({ host: '127.0.0.1', port: Number(process.argv[2]) }).catch((e) => {
  console.error(e);
  process.exit(1);
});
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));

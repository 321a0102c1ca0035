// One client process of the fleet-scale bench: COUNT shim-like connections to one broker, each its own gRPC
// channel (own TCP connection, the shim's channel options) with a Session stream and a WatchStatus stream,
// like one kms-shim each. Driven by the parent over IPC:
//   parent -> { cmd: 'roundtrip' }  Wrap then Unwrap a fresh seed on every Session; every answer checked
//   parent -> { cmd: 'count' }      status messages received since the last count (heartbeats)
//   parent -> { cmd: 'watch', from } acknowledge, then report when every status stream has seen a key_id other than `from`
//   parent -> { cmd: 'stop' }
// Usage (forked by bench/fleet-scale.js): node fleet-scale-client.js PORT COUNT
'use strict';
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const { brokerV1 } = require('@kekbroker/proto');

const [port, count] = process.argv.slice(2).map(Number);
const KekBroker = brokerV1().KekBroker;
const options = {
  // The shim's options (services/kms-shim/src/broker-client.ts), and a channel of its own per connection:
  // without the local subchannel pool, channels with equal options share one TCP connection.
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.enable_channelz': 0,
  'grpc.use_local_subchannel_pool': 1,
};
const md = () => {
  const m = new grpc.Metadata();
  m.set('x-kekbroker-tenant', 'dev');
  return m;
};

const conns = [];
let statusMessages = 0;
let watchFrom;
let changedAt = [];

function open(i) {
  const client = new KekBroker(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options);
  const c = { client, keyId: '', pending: new Map(), nextId: 1, errors: 0 };
  c.status = new Promise((resolve, reject) => {
    const w = client.WatchStatus({ keyring: 'default' }, md());
    w.on('data', (s) => {
      statusMessages++;
      c.keyId = s.key_id;
      resolve();
      if (watchFrom !== undefined && s.key_id !== watchFrom && changedAt[i] === undefined) {
        changedAt[i] = performance.timeOrigin + performance.now();
        if (changedAt.filter((x) => x !== undefined).length === conns.length) process.send({ changed: changedAt, keyIds: [...new Set(conns.map((c) => c.keyId))] });
      }
    });
    w.on('error', (e) => {
      if (!stopping) process.send({ error: `status stream ${i}: ${e.message}` });
      reject(e);
    });
    c.watch = w;
  });
  c.session = client.Session(md());
  c.session.on('data', (r) => {
    const p = c.pending.get(String(r.id));
    c.pending.delete(String(r.id));
    if (p) p(r);
  });
  c.session.on('error', (e) => {
    if (!stopping) process.send({ error: `session ${i}: ${e.message}` });
  });
  return c;
}

function call(c, op) {
  const id = c.nextId++;
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('session call timed out (30 s)')), 30_000);
    c.pending.set(String(id), (r) => {
      clearTimeout(t);
      if (r.error) reject(new Error(`${r.error.code}: ${r.error.message}`));
      else resolve(r);
    });
    c.session.write({ id, deadline_ms: 30_000, ...op });
  });
}

/** Wrap a fresh seed and unwrap it again on every connection: returns { ok, wrong, errors }. */
async function roundtrip() {
  const out = { ok: 0, wrong: 0, errors: 0, samples: [] };
  await Promise.all(conns.map(async (c) => {
    const seed = crypto.randomBytes(32);
    try {
      const w = await call(c, { wrap: { keyring: 'default', plaintext: seed } });
      const u = await call(c, { unwrap: { keyring: 'default', ciphertext: w.wrap.ciphertext, key_id: w.wrap.key_id } });
      if (Buffer.from(u.unwrap.plaintext).equals(seed)) out.ok++;
      else out.wrong++;
    } catch (e) {
      out.errors++;
      if (out.samples.length < 3) out.samples.push(e.message);
    }
  }));
  return out;
}

let stopping = false;
process.on('message', async (m) => {
  if (m.cmd === 'roundtrip') process.send({ roundtrip: await roundtrip() });
  else if (m.cmd === 'count') {
    process.send({ count: statusMessages });
    statusMessages = 0;
  } else if (m.cmd === 'watch') {
    changedAt = [];
    watchFrom = m.from;
    // A stream that already has the new key_id (it arrived before this message) counts as changed now.
    conns.forEach((c, i) => {
      if (c.keyId !== m.from) changedAt[i] = performance.timeOrigin + performance.now();
    });
    process.send({ watching: true });
    if (changedAt.filter((x) => x !== undefined).length === conns.length) process.send({ changed: changedAt, keyIds: [...new Set(conns.map((c) => c.keyId))] });
  } else if (m.cmd === 'stop') {
    stopping = true;
    for (const c of conns) {
      c.watch.cancel();
      c.session.end();
      c.client.close();
    }
    process.exit(0);
  }
});

(async () => {
  // Opened in batches, like shims starting over a few seconds, not 250 handshakes in one tick.
  for (let i = 0; i < count; i += 25) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 25); j++) batch.push(open(j));
    conns.push(...batch);
    await Promise.all(batch.map((c) => c.status));
  }
  process.send({ ready: true, keyIds: [...new Set(conns.map((c) => c.keyId))] });
})().catch((e) => {
  process.send({ error: e.message });
  process.exit(1);
});

/**
 * The shim's Session multiplexer against a scripted broker (a real grpc-js server on loopback whose Session
 * handler we control): answers out of order, late answers after a deadline, and a stream reset with calls in
 * flight. Each caller must get its own answer or an error, never another caller's.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { brokerV1, type SessionRequest__Output, type SessionResponse } from '@kekbroker/proto';
import { BrokerClient } from './broker-client';

type Script = (req: SessionRequest__Output, reply: (r: SessionResponse) => void, call: grpc.ServerDuplexStream<SessionRequest__Output, SessionResponse>) => void;

let script: Script = () => undefined;
let server: grpc.Server;
let port: number;

before(async () => {
  server = new grpc.Server();
  server.addService(brokerV1().KekBroker.service, {
    Wrap: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED }),
    Unwrap: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED }),
    Session: (call: grpc.ServerDuplexStream<SessionRequest__Output, SessionResponse>) => {
      call.on('data', (req: SessionRequest__Output) => script(req, (r) => call.write(r), call));
      call.on('end', () => call.end());
    },
    WatchStatus: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      call.write({ keyring: 'default', key_id: 'kekbroker/default/abc', healthy: true, reason: 'ok', leader: true, providers: [] });
    },
  });
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
});
after(() => server.forceShutdown());

async function connectedClient(): Promise<BrokerClient> {
  const c = new BrokerClient({ endpoints: [`127.0.0.1:${port}`], keyring: 'default', credentials: grpc.credentials.createInsecure() });
  c.start();
  assert.ok(await c.waitConnected(5000), 'connected to the scripted broker');
  return c;
}

const unwrapOf = (n: number) => ({ unwrap: { keyring: 'default', ciphertext: Buffer.from([n]), key_id: '', request_id: String(n) } });
const tagOf = (req: SessionRequest__Output) => (req.unwrap?.ciphertext as Buffer)[0] as number;

test('answers delivered in reverse order reach their own callers', async () => {
  const held: Array<() => void> = [];
  script = (req, reply) => {
    held.push(() => reply({ id: req.id, unwrap: { plaintext: Buffer.alloc(32, tagOf(req)), key_id: 'k', stale: false } }));
    if (held.length === 50) for (const r of held.reverse()) r();
  };
  const c = await connectedClient();
  try {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.call(unwrapOf(i + 1), 5000)));
    answers.forEach((a, i) => assert.deepEqual(a.unwrap?.plaintext, Buffer.alloc(32, i + 1), `caller ${i + 1} got its own answer`));
  } finally {
    c.stop();
  }
});

test('a late answer after the deadline is dropped and never given to a later caller', async () => {
  script = (req, reply) => {
    const n = tagOf(req);
    // Request 1 is answered after its 100 ms deadline; request 2 at once.
    setTimeout(() => reply({ id: req.id, unwrap: { plaintext: Buffer.alloc(32, n), key_id: 'k', stale: false } }), n === 1 ? 400 : 0);
  };
  const c = await connectedClient();
  try {
    await assert.rejects(c.call(unwrapOf(1), 100), (e: Error & { code?: string }) => e.code === 'timeout');
    const second = await c.call(unwrapOf(2), 5000);
    assert.deepEqual(second.unwrap?.plaintext, Buffer.alloc(32, 2));
    await new Promise((r) => setTimeout(r, 500)); // the late answer for 1 arrives now
    const third = await c.call(unwrapOf(3), 5000);
    assert.deepEqual(third.unwrap?.plaintext, Buffer.alloc(32, 3), 'the late answer for 1 did not land on 3');
  } finally {
    c.stop();
  }
});

test('a stream reset with calls in flight fails every one of them with an error, none with an answer', async () => {
  let seen = 0;
  script = (_req, _reply, call) => {
    if (++seen === 20) call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'reset by test' });
  };
  const c = await connectedClient();
  try {
    const settled = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => c.call(unwrapOf(i + 1), 5000)));
    for (const s of settled) {
      assert.equal(s.status, 'rejected');
      assert.equal((s).reason.code, 'unavailable');
    }
  } finally {
    c.stop();
  }
});

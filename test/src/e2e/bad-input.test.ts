/**
 * Bad input through the shim's socket and through the broker API: every case gets a precise gRPC status
 * and message, no process crashes, and no plaintext seed reaches any log line.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import type { KekBrokerClient } from '@kekbroker/proto';
import { tempDir } from '@kekbroker/testkit';
import { brokerClient, tenantMd, unary } from '../helpers/broker-client';
import { KmsClient, grpcError } from '../helpers/kms-client';
import { LOG_FILES, allocateBrokerPorts, devBrokerConfig, startBroker, startShim, waitFor, type BrokerHandle, type Proc } from '../helpers/processes';
import { assertNoSeedsInLogs, recordSeed } from '../helpers/seeds';

describe('bad input is refused precisely and loses nothing', { timeout: 120_000 }, () => {
  let broker: BrokerHandle;
  let shim: { proc: Proc; socket: string };
  let kms: KmsClient;
  let api: KekBrokerClient;
  let good: { ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> };
  const seed = recordSeed(randomBytes(32));

  before(async () => {
    const dir = await tempDir();
    const ports = await allocateBrokerPorts();
    broker = await startBroker(dir, devBrokerConfig(ports), ports, 'admin-secret-2');
    shim = await startShim(dir, ['--broker', `127.0.0.1:${ports.grpc}`, '--insecure-dev-tenant', 'dev']);
    kms = new KmsClient(shim.socket);
    api = brokerClient(ports.grpc);
    await waitFor('status ok', () => kms.status().catch(() => undefined));
    good = await kms.encrypt(Buffer.from(seed));
  });
  after(async () => {
    kms?.close();
    api?.close();
    await shim?.proc.kill();
    await broker?.proc.kill();
  });

  const decryptCases: Array<[string, () => { ciphertext: Buffer; key_id: string; annotations?: Record<string, Buffer> }, number, RegExp]> = [
    ['empty ciphertext', () => ({ ...good, ciphertext: Buffer.alloc(0) }), Status.INVALID_ARGUMENT, /ciphertext is empty/],
    ['oversized ciphertext', () => ({ ...good, ciphertext: randomBytes(2048) }), Status.INVALID_ARGUMENT, /never produces more than 1024/],
    ['garbage bytes', () => ({ ...good, ciphertext: randomBytes(100) }), Status.INVALID_ARGUMENT, /malformed envelope/],
    ['truncated ciphertext', () => ({ ...good, ciphertext: good.ciphertext.subarray(0, 40) }), Status.INVALID_ARGUMENT, /malformed envelope: truncated/],
    ['tampered payload', () => ({ ...good, ciphertext: flip(good.ciphertext, good.ciphertext.length - 5) }), Status.INVALID_ARGUMENT, /failed authentication/],
    ['tampered provider wrap', () => ({ ...good, ciphertext: flip(good.ciphertext, 60) }), Status.INVALID_ARGUMENT, /failed authentication|malformed/],
    ['too-new envelope version', () => ({ ...good, ciphertext: setByte(good.ciphertext, 2, 9) }), Status.INVALID_ARGUMENT, /newer than this broker supports/],
    ['empty key_id', () => ({ ...good, key_id: '' }), Status.INVALID_ARGUMENT, /key_id is empty/],
    ['foreign key_id', () => ({ ...good, key_id: 'arn:aws:kms:eu-west-1:1:key/x' }), Status.INVALID_ARGUMENT, /not issued by kekbroker/],
    ['key_id of another keyring', () => ({ ...good, key_id: good.key_id.replace('/default/', '/other/') }), Status.INVALID_ARGUMENT, /belongs to keyring "other"/],
    ['key_id of another generation', () => ({ ...good, key_id: 'kekbroker/default/0000000000000000' }), Status.INVALID_ARGUMENT, /does not match the generation/],
    ['oversized key_id', () => ({ ...good, key_id: 'k'.repeat(1025) }), Status.INVALID_ARGUMENT, /longer than 1024/],
    ['unsupported annotation value', () => ({ ...good, annotations: { 'version.kekbroker.io': Buffer.from('7') } }), Status.INVALID_ARGUMENT, /unsupported value/],
    ['unknown kekbroker annotation', () => ({ ...good, annotations: { ...good.annotations, 'evil.kekbroker.io': Buffer.from('x') } }), Status.INVALID_ARGUMENT, /unknown kekbroker annotation/],
  ];

  for (const [name, make, code, message] of decryptCases) {
    it(`Decrypt via the socket: ${name}`, async () => {
      const e = await grpcError(kms.decrypt(make()));
      assert.equal(e.code, code, `${name}: ${e.details}`);
      assert.match(e.details, message);
    });
  }

  it('Encrypt via the socket: empty, oversized and over-the-wire-limit plaintexts', async () => {
    let e = await grpcError(kms.encrypt(Buffer.alloc(0)));
    assert.equal(e.code, Status.INVALID_ARGUMENT);
    assert.match(e.details, /plaintext is empty/);
    e = await grpcError(kms.encrypt(randomBytes(2048)));
    assert.equal(e.code, Status.INVALID_ARGUMENT);
    assert.match(e.details, /larger than 1024 bytes/);
    e = await grpcError(kms.encrypt(randomBytes(128 * 1024)));
    assert.equal(e.code, Status.RESOURCE_EXHAUSTED, 'grpc refuses messages over the shim limit before any work');
  });

  it('Encrypt via the socket: a plaintext too large for the keyring\'s 1 KiB envelope is INVALID_ARGUMENT', async () => {
    // A local-provider envelope of keyring "default" adds 148 bytes: 876 bytes of plaintext fit, 877 do not.
    const e = await grpcError(kms.encrypt(randomBytes(877)));
    assert.equal(e.code, Status.INVALID_ARGUMENT, e.details);
    assert.match(e.details, /plaintext is 877 bytes; this keyring's envelope allows at most 876/);
    const big = recordSeed(randomBytes(876));
    const sealed = await kms.encrypt(Buffer.from(big));
    assert.equal(sealed.ciphertext.length, 1024);
    assert.deepEqual((await kms.decrypt(sealed)).plaintext, big);
  });

  it('broker API: missing or unknown identity is UNAUTHENTICATED', async () => {
    let e = await grpcError(unary(api, 'Wrap', { keyring: 'default', plaintext: seed }, tenantMd()));
    assert.equal(e.code, Status.UNAUTHENTICATED);
    assert.match(e.details, /x-kekbroker-tenant/);
    e = await grpcError(unary(api, 'Wrap', { keyring: 'default', plaintext: seed }, tenantMd('mallory')));
    assert.equal(e.code, Status.UNAUTHENTICATED);
  });

  it('broker API: a keyring the tenant may not use is PERMISSION_DENIED, an empty one INVALID_ARGUMENT', async () => {
    let e = await grpcError(unary(api, 'Wrap', { keyring: 'other', plaintext: seed }, tenantMd('tenant-b')));
    assert.equal(e.code, Status.PERMISSION_DENIED);
    e = await grpcError(unary(api, 'Wrap', { keyring: 'nope', plaintext: seed }, tenantMd('dev')));
    assert.equal(e.code, Status.PERMISSION_DENIED);
    assert.match(e.details, /may not use keyring "nope"/);
    e = await grpcError(unary(api, 'Wrap', { keyring: '', plaintext: seed }, tenantMd('dev')));
    assert.equal(e.code, Status.INVALID_ARGUMENT);
  });

  // Names of Object.prototype members: a plain-object lookup would find them (and fail as INTERNAL).
  const PROTOTYPE_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__', 'prototype'];

  it('broker API: Object.prototype names are unknown tenants and keyrings, never INTERNAL, never a metric label', async () => {
    for (const n of PROTOTYPE_NAMES) {
      let e = await grpcError(unary(api, 'Wrap', { keyring: 'default', plaintext: seed }, tenantMd(n)));
      assert.equal(e.code, Status.UNAUTHENTICATED, `tenant ${n}: ${e.details}`);
      assert.match(e.details, /unknown tenant/);
      e = await grpcError(unary(api, 'Unwrap', { keyring: 'default', ciphertext: good.ciphertext }, tenantMd(n)));
      assert.equal(e.code, Status.UNAUTHENTICATED, `tenant ${n}: ${e.details}`);
      e = await grpcError(unary(api, 'Wrap', { keyring: n, plaintext: seed }, tenantMd('dev')));
      assert.equal(e.code, Status.PERMISSION_DENIED, `keyring ${n}: ${e.details}`);
      e = await grpcError(unary(api, 'Unwrap', { keyring: n, ciphertext: good.ciphertext }, tenantMd('dev')));
      assert.equal(e.code, Status.PERMISSION_DENIED, `keyring ${n}: ${e.details}`);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${broker.ports.http}/metrics`)).text();
    for (const n of PROTOTYPE_NAMES) assert.ok(!metrics.includes(`"${n}"`), `no label value "${n}"`);
    const errors = (await broker.proc.logs()).split('\n').filter((l) => l.includes('"level":"error"'));
    assert.deepEqual(errors, [], 'no error log line');
  });

  it('broker API: a ciphertext replayed by another tenant fails to unwrap (tenant binding)', async () => {
    const e = await grpcError(unary(api, 'Unwrap', { keyring: 'default', ciphertext: good.ciphertext }, tenantMd('tenant-b')));
    assert.equal(e.code, Status.INVALID_ARGUMENT);
    assert.match(e.details, /tenant/);
  });

  it('broker API: a ciphertext of one keyring is refused by another', async () => {
    const w = await unary<object, { ciphertext: Buffer }>(api, 'Wrap', { keyring: 'other', plaintext: recordSeed(randomBytes(32)) }, tenantMd('dev'));
    const e = await grpcError(unary(api, 'Unwrap', { keyring: 'default', ciphertext: w.ciphertext }, tenantMd('dev')));
    assert.equal(e.code, Status.INVALID_ARGUMENT);
    assert.match(e.details, /belongs to keyring "other"/);
  });

  it('broker API: oversized plaintexts are refused before any KMS call', async () => {
    const e = await grpcError(unary(api, 'Wrap', { keyring: 'default', plaintext: Buffer.alloc(1024 * 1024 + 1, 1) }, tenantMd('dev')));
    assert.equal(e.code, Status.INVALID_ARGUMENT);
    assert.match(e.details, /larger than 1048576 bytes/);
  });

  it('300 random mutations of a valid ciphertext are each refused as invalid input, never a crash', async () => {
    for (let i = 0; i < 300; i++) {
      const c = Buffer.from(good.ciphertext);
      const n = 1 + (i % 4);
      for (let j = 0; j < n; j++) {
        const at = Math.floor(Math.random() * c.length);
        c[at] = Math.floor(Math.random() * 256);
      }
      const mutated = i % 10 === 0 ? c.subarray(0, Math.floor(Math.random() * c.length)) : c;
      if (mutated.equals(good.ciphertext)) continue;
      const e = await grpcError(unary(api, 'Unwrap', { keyring: 'default', ciphertext: mutated }, tenantMd('dev')));
      assert.ok([Status.INVALID_ARGUMENT, Status.NOT_FOUND].includes(e.code), `mutation ${i}: ${e.code} ${e.details}`);
    }
  });

  it('both processes are still alive, the good ciphertext still decrypts, and no log holds a seed', async () => {
    assert.ok(broker.proc.alive, 'broker alive');
    assert.ok(shim.proc.alive, 'shim alive');
    assert.deepEqual((await kms.decrypt(good)).plaintext, seed);
    const scanned = await assertNoSeedsInLogs(LOG_FILES);
    assert.ok(scanned > 0, 'the logs were not empty');
  });
});

function flip(b: Buffer, at: number): Buffer {
  const c = Buffer.from(b);
  c[at] = (c[at] ?? 0) ^ 0x01;
  return c;
}

function setByte(b: Buffer, at: number, v: number): Buffer {
  const c = Buffer.from(b);
  c[at] = v;
  return c;
}

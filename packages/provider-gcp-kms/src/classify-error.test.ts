/**
 * The classification table, fed with REAL errors: the real @google-cloud/kms client (through
 * sdk-client.ts, exactly as in production) against the GCP KMS emulator with faults injected. Each row
 * says how to provoke the failure and what kekbroker must make of it.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { ErrorCode } from '@kekbroker/core';
import { startGcpKmsEmulator, type GcpKmsEmulator } from '@kekbroker/emulators';
import { installLoopbackGuard, type LoopbackGuard } from '@kekbroker/testkit';
import type { GcpKmsClient } from './client';
import { classifyGcpError, type GcpOperation } from './classify-error';
import { crc32c } from '@aws-crypto/crc32c';
import { createSdkClient } from './sdk-client';

const PT = Buffer.alloc(32, 3);
const AAD = Buffer.from('kekbroker\0v=1\0tenant=a\0keyring=k');
const crc = (b: Buffer) => ({ value: crc32c(b) });
const call = (timeoutMs = 5000, signal: AbortSignal = AbortSignal.timeout(10_000)) => ({ signal, timeoutMs });

interface Env {
  emu: GcpKmsEmulator;
  client: GcpKmsClient;
  key: string;
  /** A ciphertext of PT under `key` with AAD. */
  ct: Buffer;
}

const encrypt = (e: Env, name = e.key, pt = PT, timeoutMs?: number) =>
  e.client.encrypt({ name, plaintext: pt, additionalAuthenticatedData: AAD, plaintextCrc32c: crc(pt), additionalAuthenticatedDataCrc32c: crc(AAD) }, call(timeoutMs));
const decrypt = (e: Env, ct = e.ct, aad = AAD, ctCrc = crc(ct)) =>
  e.client.decrypt({ name: e.key, ciphertext: ct, additionalAuthenticatedData: aad, ciphertextCrc32c: ctCrc, additionalAuthenticatedDataCrc32c: crc(aad) }, call());

interface Row {
  name: string;
  op: GcpOperation;
  provoke(e: Env): Promise<unknown>;
  code: ErrorCode;
  message?: RegExp;
  retryAfterMs?: number;
}

const ROWS: Row[] = [
  {
    name: 'RESOURCE_EXHAUSTED (quota) → throttled, with the RetryInfo delay',
    op: 'Encrypt', code: 'throttled', message: /quota exhausted/, retryAfterMs: 1000,
    provoke: (e) => (e.emu.faults.add({ kind: 'throttle', count: 1 }), encrypt(e)),
  },
  {
    name: 'UNAVAILABLE (server error fault) → unavailable',
    op: 'Encrypt', code: 'unavailable', message: /UNAVAILABLE/,
    provoke: (e) => (e.emu.faults.add({ kind: 'error', count: 1 }), encrypt(e)),
  },
  {
    name: 'connection reset (global outage) → unavailable',
    op: 'Decrypt', code: 'unavailable',
    provoke: async (e) => {
      e.emu.faults.add({ kind: 'outage' });
      e.emu.onFaultsChanged();
      try {
        return await decrypt(e);
      } finally {
        e.emu.faults.clear();
      }
    },
  },
  {
    name: 'INTERNAL → unavailable (server-side, usually transient)',
    op: 'Encrypt', code: 'unavailable', message: /INTERNAL/,
    provoke: (e) => (e.emu.injectStatus({ code: grpc.status.INTERNAL, details: 'Internal error encountered.' }), encrypt(e)),
  },
  {
    name: 'DEADLINE_EXCEEDED (slow KMS, per-call timeout) → timeout',
    op: 'Encrypt', code: 'timeout', message: /DEADLINE_EXCEEDED/,
    provoke: async (e) => {
      e.emu.faults.add({ kind: 'latency', ms: 5000, count: 1 });
      return encrypt(e, e.key, PT, 100);
    },
  },
  {
    name: 'caller abort → timeout',
    op: 'Encrypt', code: 'timeout', message: /abandoned/,
    provoke: async (e) => {
      e.emu.faults.add({ kind: 'latency', ms: 60_000, count: 1 });
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      return e.client.encrypt({ name: e.key, plaintext: PT, additionalAuthenticatedData: AAD, plaintextCrc32c: crc(PT), additionalAuthenticatedDataCrc32c: crc(AAD) }, call(60_000, ac.signal));
    },
  },
  {
    name: 'NOT_FOUND (no such key) → not-found',
    op: 'Encrypt', code: 'not-found', message: /check keyName/,
    provoke: (e) => encrypt(e, e.key.replace(/[^/]+$/, 'absent')),
  },
  {
    name: 'FAILED_PRECONDITION (disabled version) → not-found, naming the state',
    op: 'Decrypt', code: 'not-found', message: /current state is: DISABLED/,
    provoke: async (e) => {
      await e.emu.disableKey(e.key);
      try {
        return await decrypt(e);
      } finally {
        await e.emu.enableKey(e.key);
      }
    },
  },
  {
    name: 'PERMISSION_DENIED → permission-denied, naming the role to grant',
    op: 'Encrypt', code: 'permission-denied', message: /roles\/cloudkms\.cryptoKeyEncrypterDecrypter/,
    provoke: (e) => (
      e.emu.injectStatus({ code: grpc.status.PERMISSION_DENIED, details: `Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource '${e.key}' (or it may not exist).` }),
      encrypt(e)
    ),
  },
  {
    name: 'UNAUTHENTICATED (our credentials refused) → permission-denied',
    op: 'Encrypt', code: 'permission-denied', message: /credentials/,
    provoke: (e) => (e.emu.injectStatus({ code: grpc.status.UNAUTHENTICATED, details: 'Request had invalid authentication credentials.' }), encrypt(e)),
  },
  {
    name: 'INVALID_ARGUMENT on Decrypt (wrong AAD) → corrupt',
    op: 'Decrypt', code: 'corrupt',
    provoke: (e) => decrypt(e, e.ct, Buffer.from('kekbroker\0v=1\0tenant=b\0keyring=k')),
  },
  {
    name: 'INVALID_ARGUMENT on Decrypt (tampered ciphertext) → corrupt',
    op: 'Decrypt', code: 'corrupt',
    provoke: (e) => {
      const bad = Buffer.from(e.ct);
      bad[bad.length - 3] = (bad[bad.length - 3] ?? 0) ^ 1;
      return decrypt(e, bad);
    },
  },
  {
    name: 'INVALID_ARGUMENT "checksum did not match" (request damaged in transit) → unavailable, not corrupt',
    op: 'Decrypt', code: 'unavailable', message: /damaged in transit/,
    provoke: (e) => decrypt(e, e.ct, AAD, { value: (crc32c(e.ct) ^ 1) >>> 0 }),
  },
  {
    name: 'INVALID_ARGUMENT on Encrypt (we sent something malformed) → internal',
    op: 'Encrypt', code: 'internal', message: /INVALID_ARGUMENT/,
    provoke: (e) => encrypt(e, e.key, Buffer.alloc(0)),
  },
  {
    name: 'UNIMPLEMENTED (endpoint is not Cloud KMS) → internal',
    op: 'GetCryptoKey', code: 'internal', message: /UNIMPLEMENTED/,
    provoke: (e) => (e.emu.injectStatus({ code: grpc.status.UNIMPLEMENTED, details: 'Method not found.' }), e.client.getCryptoKey({ name: e.key }, call())),
  },
];

describe('classifyGcpError with real SDK errors from the emulator', () => {
  let env: Env;
  let guard: LoopbackGuard;

  before(async () => {
    guard = installLoopbackGuard();
    const emu = await startGcpKmsEmulator();
    const key = await emu.createKey('p', 'us-east1', 'ring', 'kek');
    const client = createSdkClient({ endpoint: `127.0.0.1:${emu.port}`, insecure: true });
    const res = await client.encrypt({ name: key, plaintext: PT, additionalAuthenticatedData: AAD, plaintextCrc32c: crc(PT), additionalAuthenticatedDataCrc32c: crc(AAD) }, call());
    env = { emu, client, key, ct: Buffer.from(res.ciphertext as Uint8Array) };
  });
  after(async () => {
    await env.client.close();
    await env.emu.close();
    guard.uninstall();
    assert.deepEqual(guard.violations, []);
  });

  for (const row of ROWS) {
    it(row.name, async () => {
      const raw = await row.provoke(env).then(
        () => assert.fail('expected the SDK call to fail'),
        (e: unknown) => e,
      );
      const k = classifyGcpError(raw, { provider: 'gcp-a', op: row.op, resource: env.key });
      assert.equal(k.code, row.code, `${k.code}: ${k.message}`);
      assert.equal(k.provider, 'gcp-a');
      assert.equal(k.cause, raw, 'the SDK error is kept as the cause, for the log');
      if (row.message) assert.match(k.message, row.message);
      assert.equal(k.retryAfterMs, row.retryAfterMs);
      assert.ok(!k.message.includes('\n') && k.message.length < 700, 'one bounded line, no SDK dump');
      assert.ok(!k.message.includes(PT.toString('latin1')), 'no key material');
    });
  }

  it('connection refused (nothing listening) → unavailable', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const dead = createSdkClient({ endpoint: `127.0.0.1:${port}`, insecure: true });
    try {
      const raw = await dead.getCryptoKey({ name: env.key }, call()).then(() => assert.fail('expected a failure'), (e: unknown) => e);
      assert.equal((raw as { code?: unknown }).code, grpc.status.UNAVAILABLE);
      assert.equal(classifyGcpError(raw, { provider: 'gcp-a', op: 'GetCryptoKey', resource: env.key }).code, 'unavailable');
    } finally {
      await dead.close();
    }
  });

  it('credentials that cannot be loaded → unavailable, pointing at the credentials (and no metadata-server probe)', async () => {
    const bad = createSdkClient({ endpoint: `127.0.0.1:${env.emu.port}`, credentialsFile: '/nonexistent/kekbroker-sa.json' });
    try {
      const raw = await bad.getCryptoKey({ name: env.key }, call()).then(() => assert.fail('expected a failure'), (e: unknown) => e);
      const k = classifyGcpError(raw, { provider: 'gcp-a', op: 'GetCryptoKey', resource: env.key });
      assert.equal(k.code, 'unavailable');
      assert.match(k.message, /could not start.*credentialsFile/);
      // A second call builds a fresh client instead of replaying gax's cached failed initialisation.
      const again = await bad.getCryptoKey({ name: env.key }, call()).then(() => undefined, (e: unknown) => e);
      assert.notEqual(again, raw);
    } finally {
      await bad.close();
    }
  });

  it('anything else → internal with a generic message', () => {
    const k = classifyGcpError(new TypeError('cannot read properties of undefined (reading "x")'), { provider: 'gcp-a', op: 'Encrypt', resource: env.key });
    assert.equal(k.code, 'internal');
    assert.doesNotMatch(k.message, /reading/);
  });
});

/**
 * The classification table, driven end to end: the real @aws-sdk/client-kms (through sdk-client.ts) talks
 * to the AWS KMS emulator, a fault or key state is arranged, and the error the SDK throws — a real SDK
 * error object, with its name resolved from the wire — is classified. Each row asserts both the SDK-side
 * name (so a change in the SDK's error mapping shows up here) and the KekError code.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startAwsKmsEmulator, type AwsKmsEmulator } from '@kekbroker/emulators';
import { installLoopbackGuard, type LoopbackGuard } from '@kekbroker/testkit';
import { isKekError, type ErrorCode } from '@kekbroker/core';
import type { KmsApi } from './client';
import { classifyAwsError, type AwsOp } from './classify-error';
import { createSdkKmsApi, type SdkClientOptions } from './sdk-client';

const CTX = { 'kekbroker:v': '1', 'kekbroker:tenant': 'tenant-a', 'kekbroker:keyring': 'prod' };
const SECRET = Buffer.from('do-not-leak-this-plaintext-0001');

interface Env {
  emu: AwsKmsEmulator;
  api: KmsApi;
  /** A key of its own for each row, so per-key faults and states never leak between rows. */
  key: { keyId: string; arn: string };
  other: { keyId: string; arn: string };
  apiWith: (o: Partial<SdkClientOptions>) => KmsApi;
}

interface Row {
  name: string;
  op: AwsOp;
  /** The error name the SDK reports (`err.name`), or the Node errno for transport failures. */
  sdk: string;
  expect: ErrorCode;
  run(env: Env): Promise<unknown>;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const sig = (): AbortSignal => AbortSignal.timeout(10_000);

const ROWS: Row[] = [
  {
    name: 'throttling', op: 'wrap', sdk: 'ThrottlingException', expect: 'throttled',
    run: async ({ emu, api, key }) => {
      emu.faults.add({ kind: 'throttle', key: key.keyId });
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  },
  {
    name: 'LimitExceededException on the data path is a request quota', op: 'wrap', sdk: 'LimitExceededException', expect: 'throttled',
    run: async ({ emu, api, key }) => {
      emu.injectError({ type: 'LimitExceededException', key: key.keyId });
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  },
  {
    name: 'LimitExceededException on RotateKeyOnDemand is the lifetime rotation limit', op: 'rotate', sdk: 'LimitExceededException', expect: 'permission-denied',
    run: async ({ api, key }) => {
      await api.rotateKeyOnDemand(key.arn, sig()); // the emulator allows one per key here
      return api.rotateKeyOnDemand(key.arn, sig());
    },
  },
  {
    name: 'KMS internal error (500)', op: 'unwrap', sdk: 'KMSInternalException', expect: 'unavailable',
    run: async ({ emu, api, key }) => {
      const w = await api.encrypt(key.arn, SECRET, CTX, sig());
      emu.faults.add({ kind: 'error', key: key.keyId });
      return api.decrypt(key.arn, w.ciphertext, CTX, sig());
    },
  },
  ...(['DependencyTimeoutException', 'KeyUnavailableException'] as const).map((type): Row => ({
    name: `${type} (5xx)`, op: 'wrap', sdk: type, expect: 'unavailable',
    run: async ({ emu, api, key }) => {
      emu.injectError({ type, key: key.keyId });
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  })),
  {
    name: 'rotation conflict', op: 'rotate', sdk: 'ConflictException', expect: 'unavailable',
    run: async ({ emu, api, key }) => {
      emu.injectError({ type: 'ConflictException', key: key.keyId });
      return api.rotateKeyOnDemand(key.arn, sig());
    },
  },
  {
    name: 'wrong EncryptionContext', op: 'unwrap', sdk: 'InvalidCiphertextException', expect: 'corrupt',
    run: async ({ api, key }) => {
      const w = await api.encrypt(key.arn, SECRET, CTX, sig());
      return api.decrypt(key.arn, w.ciphertext, { ...CTX, 'kekbroker:tenant': 'tenant-b' }, sig());
    },
  },
  {
    name: 'corrupt ciphertext returned by Encrypt', op: 'unwrap', sdk: 'InvalidCiphertextException', expect: 'corrupt',
    run: async ({ emu, api, key }) => {
      emu.faults.add({ kind: 'corrupt', key: key.keyId, count: 1 });
      const w = await api.encrypt(key.arn, SECRET, CTX, sig());
      return api.decrypt(key.arn, w.ciphertext, CTX, sig());
    },
  },
  {
    name: 'blob of another key', op: 'unwrap', sdk: 'IncorrectKeyException', expect: 'corrupt',
    run: async ({ api, key, other }) => {
      const w = await api.encrypt(other.arn, SECRET, CTX, sig());
      return api.decrypt(key.arn, w.ciphertext, CTX, sig());
    },
  },
  {
    name: 'missing key', op: 'describe', sdk: 'NotFoundException', expect: 'not-found',
    run: async ({ api }) => api.describeKey('alias/does-not-exist', sig()),
  },
  {
    name: 'disabled key', op: 'wrap', sdk: 'DisabledException', expect: 'permission-denied',
    run: async ({ emu, api, key }) => {
      emu.disableKey(key.keyId);
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  },
  {
    name: 'key pending deletion', op: 'unwrap', sdk: 'KMSInvalidStateException', expect: 'permission-denied',
    run: async ({ emu, api, key }) => {
      const w = await api.encrypt(key.arn, SECRET, CTX, sig());
      emu.injectError({ type: 'KMSInvalidStateException', key: key.keyId });
      return api.decrypt(key.arn, w.ciphertext, CTX, sig());
    },
  },
  {
    name: 'key policy denies us', op: 'wrap', sdk: 'AccessDeniedException', expect: 'permission-denied',
    run: async ({ emu, api, key }) => {
      emu.denyAccess(key.keyId);
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  },
  {
    name: 'credentials not recognised', op: 'wrap', sdk: 'UnrecognizedClientException', expect: 'permission-denied',
    run: async ({ emu, api, key }) => {
      emu.injectError({ type: 'UnrecognizedClientException', key: key.keyId, message: 'The security token included in the request is invalid.' });
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  },
  {
    name: 'default chain finds no credentials (IMDS disabled, nothing else configured)', op: 'wrap', sdk: 'CredentialsProviderError', expect: 'permission-denied',
    run: async ({ apiWith, key }) => {
      // The chain must end without touching the network: the loopback guard of this suite checks it.
      const saved = { ...process.env };
      for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
      process.env.AWS_EC2_METADATA_DISABLED = 'true';
      process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/kekbroker-test/credentials';
      process.env.AWS_CONFIG_FILE = '/nonexistent/kekbroker-test/config';
      const bare = apiWith({ credentials: undefined });
      try {
        return await bare.encrypt(key.arn, SECRET, CTX, sig());
      } finally {
        bare.close();
        for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
        Object.assign(process.env, saved);
      }
    },
  },
  {
    name: 'key of the wrong kind', op: 'wrap', sdk: 'InvalidKeyUsageException', expect: 'invalid-input',
    run: async ({ emu, api, key }) => {
      emu.injectError({ type: 'InvalidKeyUsageException', key: key.keyId });
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  },
  {
    name: 'rotation unsupported for the key', op: 'rotate', sdk: 'UnsupportedOperationException', expect: 'invalid-input',
    run: async ({ emu, api, key }) => {
      emu.injectError({ type: 'UnsupportedOperationException', key: key.keyId });
      return api.rotateKeyOnDemand(key.arn, sig());
    },
  },
  {
    name: 'a request KMS finds malformed is our bug', op: 'wrap', sdk: 'ValidationException', expect: 'internal',
    run: async ({ emu, api, key }) => {
      emu.injectError({ type: 'ValidationException', key: key.keyId });
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  },
  {
    name: 'an unknown 5xx error', op: 'wrap', sdk: 'BrandNewServerException', expect: 'unavailable',
    run: async ({ emu, api, key }) => {
      emu.injectError({ type: 'BrandNewServerException', status: 502, key: key.keyId });
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  },
  {
    name: 'an unknown 4xx error', op: 'wrap', sdk: 'BrandNewClientException', expect: 'internal',
    run: async ({ emu, api, key }) => {
      emu.injectError({ type: 'BrandNewClientException', status: 400, key: key.keyId });
      return api.encrypt(key.arn, SECRET, CTX, sig());
    },
  },
  {
    name: 'outage: connections reset', op: 'unwrap', sdk: 'ECONNRESET', expect: 'unavailable',
    run: async ({ emu, api, key }) => {
      const w = await api.encrypt(key.arn, SECRET, CTX, sig());
      emu.faults.add({ kind: 'outage' });
      emu.onFaultsChanged();
      return api.decrypt(key.arn, w.ciphertext, CTX, sig());
    },
  },
  {
    name: 'nothing listening', op: 'wrap', sdk: 'ECONNREFUSED', expect: 'unavailable',
    run: async ({ apiWith, key }) => {
      const dead = apiWith({ endpoint: `http://127.0.0.1:${await freePort()}` });
      try {
        return await dead.encrypt(key.arn, SECRET, CTX, sig());
      } finally {
        dead.close();
      }
    },
  },
  {
    name: 'KMS slower than requestTimeout', op: 'wrap', sdk: 'TimeoutError', expect: 'timeout',
    run: async ({ emu, apiWith, key }) => {
      emu.faults.add({ kind: 'latency', ms: 60_000, key: key.keyId });
      const slow = apiWith({ requestTimeoutMs: 150 });
      try {
        return await slow.encrypt(key.arn, SECRET, CTX, sig());
      } finally {
        slow.close();
      }
    },
  },
];

describe('classifyAwsError: real SDK errors from the emulator', () => {
  let emu: AwsKmsEmulator;
  const clients: KmsApi[] = [];
  const apiWith = (o: Partial<SdkClientOptions> = {}): KmsApi => {
    const opts: SdkClientOptions = {
      region: emu.region,
      endpoint: emu.endpoint,
      credentials: async () => ({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'test-secret' }),
      maxAttempts: 1,
      requestTimeoutMs: 5000,
      connectionTimeoutMs: 1000,
      ...o,
    };
    if (opts.credentials === undefined) delete opts.credentials;
    const api = createSdkKmsApi(opts);
    clients.push(api);
    return api;
  };

  let guard: LoopbackGuard;

  before(async () => {
    guard = installLoopbackGuard();
    emu = await startAwsKmsEmulator({ onDemandRotationLimit: 1 });
  });
  after(async () => {
    for (const c of clients) c.close();
    await emu.close();
    guard.uninstall();
    assert.deepEqual(guard.violations, [], 'no connection or DNS lookup may leave 127.0.0.1 (no IMDS probe)');
  });

  for (const row of ROWS) {
    it(`${row.name}: ${row.sdk} → ${row.expect}`, async () => {
      const env: Env = { emu, api: apiWith(), key: emu.createKey(), other: emu.createKey(), apiWith };
      let raw: unknown;
      try {
        await row.run(env);
      } catch (e) {
        raw = e;
      } finally {
        emu.faults.clear();
        emu.clearInjectedErrors();
      }
      assert.ok(raw !== undefined, 'the call must fail');
      const r = raw as { name?: string; code?: string };
      assert.ok(r.name === row.sdk || r.code === row.sdk, `SDK error: expected ${row.sdk}, got name=${String(r.name)} code=${String(r.code)}`);
      const k = classifyAwsError(raw, { provider: 'aws-test', key: env.key.arn, op: row.op });
      assert.ok(isKekError(k));
      assert.equal(k.code, row.expect, k.message);
      assert.equal(k.provider, 'aws-test');
      assert.ok(k.message.includes(env.key.arn), 'the message names the key');
      assert.ok(!k.message.includes(SECRET.toString()), 'no plaintext in messages');
      assert.ok(!k.message.includes('injected'), 'no SDK/server message text in ours');
    });
  }

  it('an aborted call is a timeout, whatever the SDK threw', async () => {
    const key = emu.createKey();
    emu.faults.add({ kind: 'latency', ms: 60_000, key: key.keyId });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    try {
      const e = await apiWith().encrypt(key.arn, SECRET, CTX, ac.signal).then(() => undefined, (x: unknown) => x);
      assert.equal((e as Error).name, 'AbortError');
      const k = classifyAwsError(e, { provider: 'aws-test', key: key.arn, op: 'wrap', signal: ac.signal });
      assert.equal(k.code, 'timeout');
    } finally {
      emu.faults.clear();
    }
  });

  it('throttling is never retried inside the call: one attempt, classified throttled', async () => {
    const key = emu.createKey();
    emu.faults.add({ kind: 'throttle', key: key.keyId });
    try {
      const calls0 = emu.faults.callCount();
      const e = await apiWith({ maxAttempts: 3 }).encrypt(key.arn, SECRET, CTX, sig()).then(() => undefined, (x: unknown) => x);
      assert.equal((e as { $metadata?: { attempts?: number } }).$metadata?.attempts, 1);
      assert.equal(emu.faults.callCount() - calls0, 1, 'one call reached the emulator');
      assert.equal(classifyAwsError(e, { provider: 'aws-test', key: key.arn, op: 'wrap' }).code, 'throttled');
    } finally {
      emu.faults.clear();
    }
  });

  it('a transient 500 followed by success is invisible to the caller (the SDK retried once)', async () => {
    const key = emu.createKey();
    emu.faults.add({ kind: 'error', key: key.keyId, count: 1 });
    const out = await apiWith({ maxAttempts: 2 }).encrypt(key.arn, SECRET, CTX, sig());
    assert.equal(out.keyArn, key.arn);
  });

  it('a transient 500 is not retried when the retry gate refuses (the broker\'s retry budget is spent)', async () => {
    const key = emu.createKey();
    emu.faults.add({ kind: 'error', key: key.keyId, count: 1 });
    let asked = 0;
    const retry = { gate: () => (asked++, false) };
    const calls0 = emu.faults.callCount();
    const e = await apiWith({ maxAttempts: 3, retry }).encrypt(key.arn, SECRET, CTX, sig()).then(() => undefined, (x: unknown) => x);
    assert.equal(asked, 1, 'the gate was asked before the one retry');
    assert.equal(emu.faults.callCount() - calls0, 1, 'no second call reached the emulator');
    assert.equal(classifyAwsError(e, { provider: 'aws-test', key: key.arn, op: 'wrap' }).code, 'unavailable');
    emu.faults.clear();
  });

  it('the request id reaches the operator message', async () => {
    const key = emu.createKey();
    emu.disableKey(key.keyId);
    const e = await apiWith().encrypt(key.arn, SECRET, CTX, sig()).then(() => undefined, (x: unknown) => x);
    const k = classifyAwsError(e, { provider: 'aws-test', key: key.arn, op: 'wrap' });
    assert.match(k.message, /request id [0-9a-f-]{36}/);
    assert.match(k.message, /enable-key/);
  });
});

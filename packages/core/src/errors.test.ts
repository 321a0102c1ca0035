import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_CODES, GrpcStatus, KekError, isKekError, toKekError, traitsOf } from './errors';
import { aadBytes, encryptionContext } from './wrap-context';

test('every error code maps to a gRPC status, an HTTP status and breaker accounting', () => {
  const table: Record<string, [number, number, boolean]> = {
    'invalid-input': [GrpcStatus.INVALID_ARGUMENT, 400, false],
    unauthenticated: [GrpcStatus.UNAUTHENTICATED, 401, false],
    'permission-denied': [GrpcStatus.PERMISSION_DENIED, 403, false],
    'not-found': [GrpcStatus.NOT_FOUND, 404, false],
    corrupt: [GrpcStatus.INVALID_ARGUMENT, 400, false],
    throttled: [GrpcStatus.RESOURCE_EXHAUSTED, 429, true],
    unavailable: [GrpcStatus.UNAVAILABLE, 503, true],
    timeout: [GrpcStatus.DEADLINE_EXCEEDED, 504, true],
    internal: [GrpcStatus.INTERNAL, 500, true],
  };
  assert.deepEqual(Object.keys(table).sort(), [...ERROR_CODES].sort());
  for (const code of ERROR_CODES) {
    const t = traitsOf(code);
    assert.deepEqual([t.grpc, t.http, t.countsAgainstBreaker], table[code], code);
  }
});

test('only the last four codes may open a breaker (architecture contract)', () => {
  assert.deepEqual(ERROR_CODES.filter((c) => traitsOf(c).countsAgainstBreaker), ['throttled', 'unavailable', 'timeout', 'internal']);
});

test('toKekError hides unknown errors behind a generic message and maps aborts to timeout', () => {
  const e = toKekError(new Error('SDK said: plaintext=AAAA...'));
  assert.equal(e.code, 'internal');
  assert.equal(e.message, 'internal error');
  const abort = toKekError(Object.assign(new Error('x'), { name: 'AbortError' }));
  assert.equal(abort.code, 'timeout');
  const k = new KekError('throttled', 'slow down', { retryAfterMs: 1000, provider: 'aws' });
  assert.equal(toKekError(k), k);
  assert.ok(isKekError(k));
  assert.ok(!isKekError({ name: 'KekError', code: 'nope' }));
});

test('AAD bytes are pinned (changing them breaks every stored wrap)', () => {
  const ctx = { tenant: 'dev', keyring: 'default', envelopeVersion: 1 };
  assert.equal(aadBytes(ctx).toString('hex'), Buffer.from('kekbroker\0v=1\0tenant=dev\0keyring=default').toString('hex'));
  assert.deepEqual(encryptionContext(ctx), { 'kekbroker:v': '1', 'kekbroker:tenant': 'dev', 'kekbroker:keyring': 'default' });
  assert.throws(() => aadBytes({ ...ctx, tenant: 'Bad\0' }), /tenant name must be a DNS label/);
});

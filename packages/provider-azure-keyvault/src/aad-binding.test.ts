import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aadDigest, type WrapContext } from '@kekbroker/core';
import { bindContext, unbindContext } from './aad-binding';

const CTX: WrapContext = { tenant: 'tenant-a', keyring: 'prod', envelopeVersion: 1 };

describe('aad binding', () => {
  it('appends SHA-256 of the canonical AAD and strips it again', () => {
    const seed = Buffer.alloc(32, 0xab);
    const inner = bindContext(seed, CTX);
    assert.equal(inner.length, 64);
    assert.deepEqual(inner.subarray(32), aadDigest(CTX));
    assert.deepEqual(unbindContext(Buffer.from(inner), CTX, 'p'), seed);
  });

  for (const [what, other] of [
    ['tenant', { ...CTX, tenant: 'tenant-b' }],
    ['keyring', { ...CTX, keyring: 'staging' }],
    ['envelope version', { ...CTX, envelopeVersion: 2 }],
  ] as const) {
    it(`refuses another ${what} as corrupt`, () => {
      assert.throws(() => unbindContext(bindContext(Buffer.alloc(32, 1), CTX), other, 'p'), { code: 'corrupt' });
    });
  }

  it('refuses a result too short to hold the digest, and a flipped digest bit', () => {
    assert.throws(() => unbindContext(Buffer.alloc(32), CTX, 'p'), { code: 'corrupt' });
    const inner = bindContext(Buffer.alloc(32, 1), CTX);
    inner[inner.length - 1] = (inner[inner.length - 1] ?? 0) ^ 1;
    assert.throws(() => unbindContext(inner, CTX, 'p'), { code: 'corrupt' });
  });

  it('zeroes what the vault returned, whatever the outcome', () => {
    const ok = bindContext(Buffer.alloc(32, 7), CTX);
    const out = unbindContext(ok, CTX, 'p');
    assert.ok(ok.every((b) => b === 0));
    assert.ok(out.every((b) => b === 7), 'the returned plaintext is a copy');
    const bad = bindContext(Buffer.alloc(32, 7), CTX);
    assert.throws(() => unbindContext(bad, { ...CTX, tenant: 'x' }, 'p'));
    assert.ok(bad.every((b) => b === 0));
  });
});

import assert from 'node:assert/strict';
import { createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { decodeBase64, messageKey, open, parseCiphertext, seal } from './ciphertext';

test('the message key is RFC 5869 HKDF-SHA256 (checked against crypto.hkdfSync), the AAD as documented', () => {
  const dk = randomBytes(32);
  const b = { keyName: 'k', version: 1, tenant: 't', context: Buffer.from('ctx'), associatedData: Buffer.from('ad') };
  const ct = seal(messageKey(dk, b), Buffer.from('env'), Buffer.from('hello'), b);
  const p = parseCiphertext(ct);
  assert.equal(open(messageKey(dk, b), p, b).toString(), 'hello');
  assert.deepEqual(p.envelope, Buffer.from('env'));
  const key = Buffer.from(hkdfSync('sha256', dk, Buffer.alloc(0), Buffer.concat([Buffer.from('kekbroker-transit-key\0k\0'), b.context]), 32));
  const d = createDecipheriv('aes-256-gcm', key, p.nonce);
  d.setAuthTag(p.sealed.subarray(p.sealed.length - 16));
  d.setAAD(Buffer.concat([Buffer.from('kekbroker-transit\0f=1\0key=k\0v=1\0tenant=t\0'), Buffer.from([0, 0, 0, 3]), b.context, b.associatedData]));
  assert.equal(Buffer.concat([d.update(p.sealed.subarray(0, p.sealed.length - 16)), d.final()]).toString(), 'hello');
});

test('base64 must be canonical standard base64', () => {
  assert.deepEqual(decodeBase64('aGk='), Buffer.from('hi'));
  assert.deepEqual(decodeBase64(''), Buffer.alloc(0));
  for (const bad of ['aGk', 'aGk*', 'aG k=', 'aGl=', 'a-_=', '====', 'aG==aGk=', 'aGk=\n', 'a===', 'aé==']) assert.equal(decodeBase64(bad), undefined, bad);
});

test('decodeBase64 gives the verdict of decoding, re-encoding and comparing, on 100,000 random strings', () => {
  const reference = (s: string): Buffer | undefined => {
    if (s.length % 4 !== 0) return undefined;
    const b = Buffer.from(s, 'base64');
    return b.toString('base64') === s ? b : undefined;
  };
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n.\u00e9';
  const pick = (): string => alphabet[Math.floor(Math.random() * alphabet.length)] as string;
  for (let i = 0; i < 100_000; i++) {
    let s: string;
    if (i % 2 === 0) {
      // Valid base64 of random bytes, often with one character replaced.
      s = randomBytes(i % 40).toString('base64');
      if (i % 4 === 0 && s.length > 0) {
        const at = Math.floor(Math.random() * s.length);
        s = s.slice(0, at) + pick() + s.slice(at + 1);
      }
    } else {
      s = Array.from({ length: (i % 5) * 4 + (i % 7 === 0 ? 1 : 0) }, pick).join('');
    }
    assert.deepEqual(decodeBase64(s), reference(s), JSON.stringify(s));
  }
});

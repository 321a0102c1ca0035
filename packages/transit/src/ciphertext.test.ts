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
  for (const bad of ['aGk', 'aGk*', 'aG k=', 'aGl=', 'a-_=', '====']) assert.equal(decodeBase64(bad), undefined, bad);
});

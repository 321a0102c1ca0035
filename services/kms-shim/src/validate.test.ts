import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isKekError } from '@kekbroker/core';
import { EnvelopeBudget, checkDecryptRequest, checkEncryptAnswer, isFqdn } from './validate';

test('FQDN rule matches the apiserver (IsFullyQualifiedDomainName)', () => {
  for (const ok of ['version.kekbroker.io', 'a.b', 'kms.example-1.io']) assert.ok(isFqdn(ok), ok);
  for (const bad of ['', 'single', 'UPPER.case', '-a.b', 'a..b', 'a.b-', `${'a'.repeat(64)}.io`]) assert.ok(!isFqdn(bad), bad);
});

test('Encrypt answers that the apiserver would refuse are caught first', () => {
  const ann = { 'version.kekbroker.io': Buffer.from('1') };
  assert.doesNotThrow(() => checkEncryptAnswer(Buffer.alloc(200), 'kekbroker/default/0011223344556677', ann));
  assert.throws(() => checkEncryptAnswer(Buffer.alloc(1025), 'k', ann), /refuses more than 1024/);
  assert.throws(() => checkEncryptAnswer(Buffer.alloc(0), 'k', ann), /empty ciphertext/);
  assert.throws(() => checkEncryptAnswer(Buffer.alloc(1), '', ann), /key_id is empty/);
  assert.throws(() => checkEncryptAnswer(Buffer.alloc(1), 'x'.repeat(1025), ann), /refuses more than 1024/);
  assert.throws(() => checkEncryptAnswer(Buffer.alloc(1), 'k', { Bad_Key: Buffer.from('1') }), /not a fully qualified domain name/);
  assert.throws(() => checkEncryptAnswer(Buffer.alloc(1), 'k', { 'a.b': Buffer.alloc(33 * 1024) }), /limit is 32768/);
});

test('Decrypt checks key_id and annotations before any unwrap', () => {
  const ok = 'kekbroker/default/0011223344556677';
  assert.doesNotThrow(() => checkDecryptRequest('default', Buffer.alloc(10), ok, { 'version.kekbroker.io': Buffer.from('1'), 'other.example.com': Buffer.from('x') }));
  assert.throws(() => checkDecryptRequest('default', Buffer.alloc(10), 'kekbroker/prod/0011223344556677', {}), /belongs to keyring "prod"/);
  assert.throws(() => checkDecryptRequest('default', Buffer.alloc(10), 'something', {}), /not issued by kekbroker/);
});

test('the plaintext limit follows the envelope overhead learned per key_id', () => {
  const b = new EnvelopeBudget('default');
  assert.equal(b.floor, 61, 'one wrap of one byte under keyring "default"');
  assert.equal(b.maxPlaintext(undefined), 963);
  b.learn('kekbroker/default/0011223344556677', 32, 180); // a local-provider envelope: 148 bytes of overhead
  assert.equal(b.maxPlaintext('kekbroker/default/0011223344556677'), 876);
  assert.doesNotThrow(() => b.check('kekbroker/default/0011223344556677', 876));
  assert.throws(() => b.check('kekbroker/default/0011223344556677', 877), (e: unknown) => isKekError(e) && e.code === 'invalid-input' && /at most 876/.test(e.message));
  assert.equal(b.maxPlaintext('kekbroker/default/ffffffffffffffff'), 963, 'another generation starts from the floor');
});

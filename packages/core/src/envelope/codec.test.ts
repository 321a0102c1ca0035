import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isKekError } from '../errors';
import { decodeEnvelope, encodeEnvelope, encodeHeader } from './codec';
import { MAX_ENVELOPE_BYTES } from './format';
import { formatKeyId, generationOf, parseKeyId } from './key-id';
import { openPayload, payloadAad } from './payload';
import type { EnvelopeVector } from './vectors';

const vectors = JSON.parse(readFileSync(path.resolve(__dirname, '../../../../test/vectors/envelope-v1.json'), 'utf8')) as EnvelopeVector[];

test('golden vectors: decode, derive key_id, open the payload, re-encode byte for byte', () => {
  assert.ok(vectors.length >= 3);
  for (const v of vectors) {
    const bytes = Buffer.from(v.envelopeHex, 'hex');
    const env = decodeEnvelope(bytes);
    assert.equal(env.version, 1, v.name);
    assert.equal(env.keyring, v.keyring);
    assert.deepEqual(env.wraps.map((w) => w.keyVersionRef), v.refs.map((r) => r.keyVersionRef));
    assert.deepEqual(Buffer.from(env.generation), generationOf(v.refs));
    assert.equal(formatKeyId(env.keyring, env.generation), v.keyId);
    const pt = openPayload(Buffer.from(v.keyHex, 'hex'), env.nonce, env.sealed, payloadAad(v.tenant, env.header));
    assert.equal(pt.toString('hex'), v.plaintextHex);
    assert.deepEqual(encodeEnvelope(env), bytes);
  }
});

test('golden vectors: another tenant cannot open the payload', () => {
  const v = vectors[0] as EnvelopeVector;
  const env = decodeEnvelope(Buffer.from(v.envelopeHex, 'hex'));
  assert.throws(() => openPayload(Buffer.from(v.keyHex, 'hex'), env.nonce, env.sealed, payloadAad('other', env.header)), (e: unknown) => isKekError(e) && e.code === 'corrupt');
});

test('a KMS v2 envelope with three cloud wraps stays under the apiserver 1 KiB limit', () => {
  const v = vectors[1] as EnvelopeVector;
  assert.ok(v.envelopeHex.length / 2 <= 1024, `${v.envelopeHex.length / 2} bytes`);
});

const malformed: Array<[string, (b: Buffer) => Buffer, RegExp]> = [
  ['empty', () => Buffer.alloc(0), /empty/],
  ['bad magic', (b) => Buffer.concat([Buffer.from('XX'), b.subarray(2)]), /bad magic/],
  ['too-new version', (b) => patch(b, 2, 2), /newer than this broker supports \(max 1\): upgrade the broker/],
  ['version 0', (b) => patch(b, 2, 0), /unknown version 0/],
  ['flags set', (b) => patch(b, 3, 1), /unsupported flags/],
  ['keyring length 0', (b) => patch(b, 4, 0), /keyring length 0 out of range/],
  ['trailing bytes', (b) => Buffer.concat([b, Buffer.from([0])]), /1 trailing bytes/],
  ['oversized', () => Buffer.alloc(MAX_ENVELOPE_BYTES + 1), /larger than/],
];

for (const [name, mutate, message] of malformed) {
  test(`malformed envelope: ${name}`, () => {
    const b = Buffer.from((vectors[0] as EnvelopeVector).envelopeHex, 'hex');
    assert.throws(() => decodeEnvelope(mutate(b)), (e: unknown) => isKekError(e) && e.code === 'invalid-input' && message.test(e.message));
  });
}

test('every truncation of a valid envelope is refused as invalid-input, naming what was cut', () => {
  const b = Buffer.from((vectors[1] as EnvelopeVector).envelopeHex, 'hex');
  for (let n = 1; n < b.length; n++) {
    assert.throws(() => decodeEnvelope(b.subarray(0, n)), (e: unknown) => isKekError(e) && e.code === 'invalid-input' && /malformed envelope/.test(e.message), `length ${n}`);
  }
});

test('fuzz: arbitrary bytes never throw anything but a KekError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      try {
        decodeEnvelope(Buffer.concat([Buffer.from([0x4b, 0x42, 1, 0]), Buffer.from(bytes)]));
      } catch (e) {
        return isKekError(e);
      }
      return true;
    }),
    { numRuns: 3000 },
  );
});

test('fuzz: mutations of a valid envelope decode or fail as KekError, never crash', () => {
  const good = Buffer.from((vectors[1] as EnvelopeVector).envelopeHex, 'hex');
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (edits) => {
      const b = Buffer.from(good);
      for (const [at, v] of edits) b[at] = v;
      try {
        decodeEnvelope(b);
      } catch (e) {
        return isKekError(e);
      }
      return true;
    }),
    { numRuns: 3000 },
  );
});

test('property: encode then decode is the identity', () => {
  const name = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
  fc.assert(
    fc.property(
      name,
      fc.array(fc.record({ providerId: name, keyVersionRef: fc.string({ minLength: 1, maxLength: 40 }), wrapped: fc.uint8Array({ minLength: 1, maxLength: 300 }) }), { minLength: 1, maxLength: 8 }),
      fc.uint8Array({ minLength: 16, maxLength: 200 }),
      (keyring, wraps, sealed) => {
        const env = { version: 1, keyring, generation: Buffer.alloc(8, 1), wraps, nonce: Buffer.alloc(12, 2), sealed };
        const d = decodeEnvelope(encodeEnvelope(env));
        assert.equal(d.keyring, keyring);
        assert.deepEqual(d.wraps.map((w) => [w.providerId, w.keyVersionRef, Buffer.from(w.wrapped)]), wraps.map((w) => [w.providerId, w.keyVersionRef, Buffer.from(w.wrapped)]));
        assert.deepEqual(Buffer.from(d.sealed), Buffer.from(sealed));
        assert.deepEqual(d.header, encodeHeader(env));
      },
    ),
    { numRuns: 500 },
  );
});

test('key_id: format, parse, and change with any version ref', () => {
  const refs = [{ providerId: 'a', keyVersionRef: 'v1' }, { providerId: 'b', keyVersionRef: 'v1' }];
  const g = generationOf(refs);
  assert.deepEqual(generationOf([...refs].reverse()), g, 'order of providers does not matter');
  assert.notDeepEqual(generationOf([refs[0] as never, { providerId: 'b', keyVersionRef: 'v2' }]), g);
  const id = formatKeyId('prod', g);
  assert.match(id, /^kekbroker\/prod\/[0-9a-f]{16}$/);
  assert.deepEqual(parseKeyId(id), { keyring: 'prod', generation: g });
  assert.equal(parseKeyId('kekbroker/Prod/0000000000000000'), undefined);
  assert.equal(parseKeyId('kekbroker/prod/00'), undefined);
});

function patch(b: Buffer, at: number, v: number): Buffer {
  const c = Buffer.from(b);
  c[at] = v;
  return c;
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_VERSION_REF_BYTES } from '@kekbroker/core';
import { KEY_NAME, formatTimestamp, formatVersionRef, parseVersionName, parseVersionRef } from './version-ref';

const KEY = 'projects/acme-prod/locations/europe-west1/keyRings/kekbroker/cryptoKeys/kek';

describe('version refs', () => {
  it('round-trip: version name + key create time', () => {
    const ref = formatVersionRef(`${KEY}/cryptoKeyVersions/12`, '2026-11-22T19:00:00.123456789Z');
    assert.equal(ref, `${KEY}/cryptoKeyVersions/12@2026-11-22T19:00:00.123456789Z`);
    assert.deepEqual(parseVersionRef(ref), {
      keyName: KEY,
      versionId: '12',
      versionName: `${KEY}/cryptoKeyVersions/12`,
      keyCreateTime: '2026-11-22T19:00:00.123456789Z',
    });
  });

  it('rejects anything that is not exactly a ref', () => {
    for (const bad of [
      `${KEY}/cryptoKeyVersions/12`, // no create time
      `${KEY}/cryptoKeyVersions/0@2026-11-22T19:00:00.123456789Z`, // versions start at 1
      `${KEY}/cryptoKeyVersions/12@2026-11-22T19:00:00Z`, // fraction required
      `${KEY}@2026-11-22T19:00:00.123456789Z`, // a key, not a version
      `projects/p/locations/l/keyRings/r/cryptoKeys/k/extra/cryptoKeyVersions/1@2026-11-22T19:00:00.123456789Z`,
      'local:0123456789abcdef:v1',
      '',
    ]) {
      assert.equal(parseVersionRef(bad), undefined, bad);
    }
  });

  it('the longest possible ref fits in the 1024-byte limit', () => {
    const longKey = `projects/${'p'.repeat(30)}/locations/${'l'.repeat(30)}/keyRings/${'r'.repeat(63)}/cryptoKeys/${'k'.repeat(63)}`;
    assert.ok(KEY_NAME.test(longKey));
    const ref = formatVersionRef(`${longKey}/cryptoKeyVersions/999999999999999999`, '2026-11-22T19:00:00.123456789Z');
    assert.ok(parseVersionRef(ref));
    assert.ok(Buffer.byteLength(ref) <= MAX_VERSION_REF_BYTES);
  });

  it('parses CryptoKeyVersion names', () => {
    assert.deepEqual(parseVersionName(`${KEY}/cryptoKeyVersions/3`), { keyName: KEY, versionId: '3', versionName: `${KEY}/cryptoKeyVersions/3` });
    assert.equal(parseVersionName(KEY), undefined);
  });

  it('formats timestamps with all nine fractional digits, from strings, numbers or Longs', () => {
    assert.equal(formatTimestamp({ seconds: '1795374658', nanos: 174001000 }), '2026-11-22T19:10:58.174001000Z');
    assert.equal(formatTimestamp({ seconds: 1795374658, nanos: 1 }), '2026-11-22T19:10:58.000000001Z');
    assert.equal(formatTimestamp({ seconds: { toString: () => '0' } }), '1970-01-01T00:00:00.000000000Z');
    assert.equal(formatTimestamp(null), undefined);
    assert.equal(formatTimestamp({ seconds: '1', nanos: 1_000_000_000 }), undefined);
    assert.equal(formatTimestamp({ seconds: 'NaN' }), undefined);
  });
});

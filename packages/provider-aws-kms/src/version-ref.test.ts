import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatVersionRef, parseVersionRef } from './version-ref';

const ARN = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const MAT = 'a'.repeat(64);

describe('aws-kms version refs', () => {
  it('round-trip, with and without key material, and stay far below 1024 bytes', () => {
    for (const m of [MAT, undefined]) {
      const ref = formatVersionRef(ARN, m);
      assert.deepEqual(parseVersionRef(ref), { arn: ARN, region: 'eu-west-1', account: '111122223333', keyMaterialId: m });
      assert.ok(Buffer.byteLength(ref) < 256);
    }
    const mrk = 'arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab';
    assert.equal(parseVersionRef(formatVersionRef(mrk, MAT))?.region, 'us-gov-west-1');
  });

  it('refuse what is not a key ARN ref', () => {
    for (const bad of ['', 'local:0123456789abcdef:v1', 'alias/x', `${ARN.replace(':key/', ':alias/')}#${MAT}`, `${ARN}#`, `${ARN}#a b`, `arn:aws:kms:eu-west-1:1111:key/x#${MAT}`]) {
      assert.equal(parseVersionRef(bad), undefined, bad);
    }
    assert.throws(() => formatVersionRef('alias/x', MAT));
    assert.throws(() => formatVersionRef(ARN, 'has space'));
  });
});

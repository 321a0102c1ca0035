/** Standard CRC32C vectors pinned against @aws-crypto/crc32c, the implementation Cloud KMS checksums use here. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c } from '@aws-crypto/crc32c';

describe('crc32c', () => {
  it('matches the standard check value crc32c("123456789") = 0xe3069283', () => {
    assert.equal(crc32c(Buffer.from('123456789', 'ascii')), 0xe3069283);
  });

  it('matches RFC 3720 (iSCSI) vectors', () => {
    // RFC 3720 B.4: 32 bytes of zeros, of 0xff, and an ascending sequence.
    assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
  });

  it('is 0 for empty input and changes with a single flipped bit', () => {
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    const a = Buffer.from('kekbroker');
    const b = Buffer.from(a);
    b[3] = (b[3] ?? 0) ^ 1;
    assert.notEqual(crc32c(a), crc32c(b));
  });
});

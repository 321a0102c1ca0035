/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum Cloud KMS puts in its `*_crc32c`
 * fields. A 256-entry table is plenty: we checksum at most a few KiB per call. (The emulator keeps its
 * own copy because a production package must not depend on the test emulators; both copies are pinned
 * by the same standard check vectors.)
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32C of `data` as an unsigned 32-bit number (what KMS sends as an Int64Value). */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = (TABLE[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRef, parseRef } from './version-ref';

describe('version refs', () => {
  const v = '0123456789abcdef0123456789abcdef';

  it('round-trips host, name and version', () => {
    const ref = formatRef('Contoso-KEK.vault.azure.net', 'kekbroker-kek', v);
    assert.equal(ref, `azure:contoso-kek.vault.azure.net/keys/kekbroker-kek/${v}`);
    assert.deepEqual(parseRef(ref), { host: 'contoso-kek.vault.azure.net', name: 'kekbroker-kek', version: v });
    assert.deepEqual(parseRef(formatRef('127.0.0.1', 'k', v)), { host: '127.0.0.1', name: 'k', version: v });
  });

  it('stays well under the 1024-byte limit for the longest names Azure allows', () => {
    const ref = formatRef(`${'h'.repeat(24)}.managedhsm.azure.net`, 'n'.repeat(127), v);
    assert.ok(Buffer.byteLength(ref) < 256);
  });

  it('rejects what is not an Azure ref, or could smuggle a path', () => {
    for (const bad of ['', 'local:0011:v1', `azure:host/keys/k/${v}/wrapkey`, `azure:host/keys/k/../${v}`, `azure:ho st/keys/k/${v}`, `azure:host/secrets/k/${v}`, 'azure:host/keys/k/']) {
      assert.equal(parseRef(bad), undefined, bad);
    }
    assert.throws(() => formatRef('host', 'bad/name', v), { code: 'internal' });
  });
});

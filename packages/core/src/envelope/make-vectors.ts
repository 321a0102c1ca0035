/**
 * Prints golden vectors for the current format (run once when a NEW format version is introduced:
 * `node packages/core/dist/envelope/make-vectors.js > test/vectors/envelope-vN.json`).
 */
import { encodeEnvelope, encodeHeader } from './codec';
import { ENVELOPE_VERSION } from './format';
import { formatKeyId, generationOf } from './key-id';
import { payloadAad, sealPayload } from './payload';
import type { EnvelopeVector } from './vectors';

function vector(name: string, tenant: string, keyring: string, refs: EnvelopeVector['refs'], plaintext: Buffer): EnvelopeVector {
  const key = Buffer.alloc(32, 0x42);
  const generation = generationOf(refs);
  const wraps = refs.map((r) => ({ providerId: r.providerId, keyVersionRef: r.keyVersionRef, wrapped: Buffer.from(r.wrappedHex, 'hex') }));
  const header = encodeHeader({ version: ENVELOPE_VERSION, keyring, generation, wraps });
  const { nonce, sealed } = sealPayload(key, plaintext, payloadAad(tenant, header));
  const env = encodeEnvelope({ version: ENVELOPE_VERSION, keyring, generation, wraps, nonce, sealed });
  return { name, tenant, keyring, refs, keyHex: key.toString('hex'), plaintextHex: plaintext.toString('hex'), envelopeHex: env.toString('hex'), keyId: formatKeyId(keyring, generation) };
}

if (require.main === module) {
  const seed = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
  const out = [
    vector('kms-v2 seed, one local wrap', 'dev', 'default', [{ providerId: 'local', keyVersionRef: 'local:0123456789abcdef:v1', wrappedHex: 'aa'.repeat(60) }], seed),
    vector('kms-v2 seed, three cloud wraps', 'cluster-a', 'prod', [
      { providerId: 'aws-eu', keyVersionRef: 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab#material-1', wrappedHex: 'bb'.repeat(150) },
      { providerId: 'gcp-eu', keyVersionRef: 'projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3@1700000000', wrappedHex: 'cc'.repeat(90) },
      { providerId: 'azure-we', keyVersionRef: 'azure:kv-prod.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef', wrappedHex: 'dd'.repeat(256) },
    ], seed),
    vector('transit plaintext, 1 KiB', 'apps', 'transit', [{ providerId: 'local', keyVersionRef: 'local:0123456789abcdef:v7', wrappedHex: 'ee'.repeat(60) }], Buffer.alloc(1024, 0x5a)),
  ];
  console.log(JSON.stringify(out, null, 2));
}

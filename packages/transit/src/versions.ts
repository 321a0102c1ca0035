/**
 * Transit key versions: integers that are stable across restarts, replicas and a Redis flush, never reused
 * and ordered. The broker keeps no version table of its own; a transit key's version IS the version number
 * of one provider of its keyring, the key's "version provider" (by default the keyring's first provider):
 *
 *   local    `local:<keystore id>:v<N>`                         -> N (the keystore file's version counter)
 *   gcp-kms  `projects/.../cryptoKeyVersions/<N>@<create time>` -> N (Cloud KMS numbers versions itself)
 *
 * Both providers count versions up by one per rotation and never reuse a number for a key, so the integer
 * is a fact stored in the KMS, read back by every replica alike. AWS KMS key material ids and Azure Key
 * Vault version ids are opaque and unordered, so those providers cannot be version providers: a keyring
 * made only of them is refused for transit at start, with the fix in the message. Such a keyring can
 * still be served by adding a local or GCP provider to it and naming it `versionProvider`.
 *
 * A keyring rotation rotates every provider, so the version provider's N moves by one per rotation. A
 * rotation of some other provider alone (out of band) changes the keyring's generation but not N: both
 * generations then share N, which is harmless, since every ciphertext carries its own data-key envelope.
 */
import type { KeyringStatus } from '@kekbroker/keyring';

const LOCAL = /^local:[0-9a-f]{16}:v([1-9][0-9]{0,8})$/;
const GCP = /\/cryptoKeyVersions\/([1-9][0-9]{0,15})@[^@/]+$/;
export const VERSION_PROVIDER_TYPES: readonly string[] = ['local', 'gcp-kms'];

/** The integer version in a provider version ref, or undefined when the ref carries none. */
export function versionOfRef(ref: string): number | undefined {
  const m = LOCAL.exec(ref) ?? GCP.exec(ref);
  return m ? Number(m[1]) : undefined;
}

/** The transit key's latest version, from the keyring's status (no KMS call); undefined until described. */
export function latestVersion(status: KeyringStatus, versionProvider: string): number | undefined {
  const p = status.providers.find((x) => x.id === versionProvider);
  return p ? versionOfRef(p.currentVersionRef) : undefined;
}

/**
 * key_id derivation. kube-apiserver requires a key_id that is stable while the KEK is unchanged, changes
 * on rotation, and is never reused (A -> B -> A must not report A again). We derive it from the keyring
 * name and the exact version refs of every provider in the keyring, sorted by provider id. Refs embed
 * provider-side unique ids (ARNs + key material ids, GCP version names, Azure version GUIDs, a random
 * local keystore id), so a re-created key gets a new key_id. Failover changes which provider is used,
 * not the refs, so key_id does not flip during an outage.
 */
import { createHash } from 'node:crypto';
import { GENERATION_BYTES } from './format';

export interface VersionRef {
  readonly providerId: string;
  readonly keyVersionRef: string;
}

export function generationOf(refs: readonly VersionRef[]): Buffer {
  const h = createHash('sha256').update('kekbroker-generation\0');
  for (const r of [...refs].sort((a, b) => (a.providerId < b.providerId ? -1 : a.providerId > b.providerId ? 1 : 0))) {
    h.update(`${r.providerId}\0${r.keyVersionRef}\0`);
  }
  return h.digest().subarray(0, GENERATION_BYTES);
}

const KEY_ID = /^kekbroker\/([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)\/([0-9a-f]{16})$/;

/** `kekbroker/<keyring>/<16 hex digits of the generation>`: public, short, at most 90 bytes. */
export function formatKeyId(keyring: string, generation: Uint8Array): string {
  return `kekbroker/${keyring}/${Buffer.from(generation).toString('hex')}`;
}

export function parseKeyId(keyId: string): { keyring: string; generation: Buffer } | undefined {
  const m = KEY_ID.exec(keyId);
  if (!m || m[1] === undefined || m[3] === undefined) return undefined;
  return { keyring: m[1], generation: Buffer.from(m[3], 'hex') };
}

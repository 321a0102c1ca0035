/**
 * Version refs for Cloud KMS: the CryptoKeyVersion resource name Encrypt answered with, plus the create time
 * of its CryptoKey, e.g.
 *   projects/p/locations/europe-west1/keyRings/kek/cryptoKeys/broker/cryptoKeyVersions/3@2026-11-22T19:00:00.123456789Z
 *
 * Why the create time: version numbers restart at 1 when a key is created again under the same name, and a
 * ref feeds kube-apiserver's key_id, which must never be reused for different key material. Cloud KMS
 * itself retires the names of deleted keys (RetiredResource) and never reuses project ids, but emulators,
 * restores and future API changes do not promise that; the create time makes the ref unique regardless.
 * It is fetched once per provider (GetCryptoKey), so it costs nothing per call.
 */
import type { Timestamp } from './client';

const KEY = 'projects/[^/@]+/locations/[^/@]+/keyRings/[^/@]+/cryptoKeys/[^/@]+';
export const KEY_NAME = new RegExp(`^${KEY}$`);
const VERSION = new RegExp(`^(${KEY})/cryptoKeyVersions/([1-9][0-9]{0,17})$`);
const REF = new RegExp(`^(${KEY})/cryptoKeyVersions/([1-9][0-9]{0,17})@([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z)$`);

export interface ParsedVersion {
  keyName: string;
  versionId: string;
  versionName: string;
}

/** Split a CryptoKeyVersion name; undefined when it is not one. */
export function parseVersionName(name: string): ParsedVersion | undefined {
  const m = VERSION.exec(name);
  return m ? { keyName: m[1] as string, versionId: m[2] as string, versionName: name } : undefined;
}

export function formatVersionRef(versionName: string, keyCreateTime: string): string {
  return `${versionName}@${keyCreateTime}`;
}

export function parseVersionRef(ref: string): (ParsedVersion & { keyCreateTime: string }) | undefined {
  const m = REF.exec(ref);
  if (!m) return undefined;
  return { keyName: m[1] as string, versionId: m[2] as string, versionName: `${m[1]}/cryptoKeyVersions/${m[2]}`, keyCreateTime: m[3] as string };
}

/** RFC 3339 with all nine fractional digits, so that two instants never print alike. */
export function formatTimestamp(ts: Timestamp | null | undefined): string | undefined {
  if (!ts || ts.seconds === undefined || ts.seconds === null) return undefined;
  const seconds = Number(String(ts.seconds));
  const nanos = ts.nanos ?? 0;
  if (!Number.isSafeInteger(seconds) || !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) return undefined;
  const iso = new Date(seconds * 1000).toISOString(); // 2026-11-22T19:00:00.000Z
  if (iso.length !== 24) return undefined; // years outside 0000..9999
  return `${iso.slice(0, 19)}.${String(nanos).padStart(9, '0')}Z`;
}

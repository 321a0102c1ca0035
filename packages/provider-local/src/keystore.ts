/**
 * The local provider's keystore format: AES-256 key versions in one JSON document. It *is* the KMS for the
 * embedded default, so a keystore is only ever extended (a rotation adds a version; nothing removes one),
 * and two copies of one keystore are merged, never one dropped for the other. File I/O is in store.ts.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { KekError } from '@kekbroker/core';

export const KEYSTORE_FORMAT = 'kekbroker-local-keystore';

export interface KeyVersion {
  readonly version: number;
  readonly created: string;
  readonly key: Buffer;
}

export interface KeystoreData {
  /** Random id minted when the keystore is created; part of every version ref, so a new keystore never reuses a key_id. */
  readonly keystoreId: string;
  readonly primary: number;
  readonly versions: readonly KeyVersion[];
}

interface KeystoreFile {
  format: string;
  formatVersion: number;
  keystoreId: string;
  primary: number;
  keys: Array<{ version: number; created: string; key: string }>;
}

export function newKeystore(): KeystoreData {
  return { keystoreId: randomBytes(8).toString('hex'), primary: 1, versions: [{ version: 1, created: new Date().toISOString(), key: randomBytes(32) }] };
}

export function addVersion(ks: KeystoreData): KeystoreData {
  const next = Math.max(...ks.versions.map((v) => v.version)) + 1;
  return { ...ks, primary: next, versions: [...ks.versions, { version: next, created: new Date().toISOString(), key: randomBytes(32) }] };
}

/** Parse and validate; any problem is `internal` with a message that tells the operator what to do. */
export function parseKeystore(text: string, file: string): KeystoreData {
  const refuse = (why: string): KekError =>
    new KekError('internal', `keystore ${file} is not a valid kekbroker keystore (${why}); refusing to start rather than overwrite it: restore it from backup (docs/providers/local.md, "Restore")`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw refuse('not JSON');
  }
  const f = raw as Partial<KeystoreFile>;
  if (typeof f !== 'object' || f === null || f.format !== KEYSTORE_FORMAT) throw refuse('wrong format marker');
  if (f.formatVersion !== 1) throw refuse(`unsupported formatVersion ${String(f.formatVersion)}`);
  if (typeof f.keystoreId !== 'string' || !/^[0-9a-f]{16}$/.test(f.keystoreId)) throw refuse('bad keystoreId');
  if (!Array.isArray(f.keys) || f.keys.length === 0) throw refuse('no keys');
  const versions: KeyVersion[] = [];
  for (const k of f.keys) {
    if (!Number.isInteger(k.version) || k.version < 1) throw refuse('bad key version');
    const key = Buffer.from(String(k.key), 'base64');
    if (key.length !== 32) throw refuse(`key version ${k.version} is not 32 bytes`);
    if (versions.some((v) => v.version === k.version)) throw refuse(`duplicate key version ${k.version}`);
    versions.push({ version: k.version, created: String(k.created), key });
  }
  if (!versions.some((v) => v.version === f.primary)) throw refuse('primary version missing');
  return { keystoreId: f.keystoreId, primary: f.primary as number, versions };
}

export function serialize(ks: KeystoreData): string {
  const f: KeystoreFile = {
    format: KEYSTORE_FORMAT,
    formatVersion: 1,
    keystoreId: ks.keystoreId,
    primary: ks.primary,
    keys: ks.versions.map((v) => ({ version: v.version, created: v.created, key: v.key.toString('base64') })),
  };
  return JSON.stringify(f, null, 2) + '\n';
}

/**
 * Union of two copies of one keystore (memory and disk). A version both hold must be the same key: if it
 * is not, someone wrote the file without the lock, and picking either copy could lose ciphertexts.
 * Takes ownership of `disk`: the buffers of versions `mine` already holds are zeroed.
 */
export function mergeKeystores(mine: KeystoreData, disk: KeystoreData): { merged: KeystoreData; missingOnDisk: number[] } {
  if (mine.keystoreId !== disk.keystoreId) throw new KekError('internal', `keystore id changed from ${mine.keystoreId} to ${disk.keystoreId}`);
  const onDisk = new Map(disk.versions.map((v) => [v.version, v] as const));
  const missingOnDisk: number[] = [];
  for (const v of mine.versions) {
    const d = onDisk.get(v.version);
    if (!d) {
      missingOnDisk.push(v.version);
      continue;
    }
    const same = timingSafeEqual(d.key, v.key);
    if (!same) throw new KekError('internal', `key version ${v.version} differs between memory and disk (written without the lock?)`);
    d.key.fill(0);
    onDisk.delete(v.version);
  }
  const versions = [...mine.versions, ...onDisk.values()].sort((a, b) => a.version - b.version);
  return { merged: { keystoreId: mine.keystoreId, primary: Math.max(mine.primary, disk.primary), versions }, missingOnDisk };
}

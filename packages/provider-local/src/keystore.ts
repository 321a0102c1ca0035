/**
 * The local provider's keystore: AES-256 key versions in one JSON file (mode 0600). It *is* the KMS for
 * the embedded default, so it is treated like one: written atomically (temp file, fsync, rename, fsync of
 * the directory), never overwritten when it cannot be parsed, and never logged.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';
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
    new KekError('internal', `keystore ${file} is not a valid kekbroker keystore (${why}); refusing to start rather than overwrite it: restore it from backup, or move it away to create a new one (old ciphertexts will then be lost)`);
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

function serialize(ks: KeystoreData): string {
  const f: KeystoreFile = {
    format: KEYSTORE_FORMAT,
    formatVersion: 1,
    keystoreId: ks.keystoreId,
    primary: ks.primary,
    keys: ks.versions.map((v) => ({ version: v.version, created: v.created, key: v.key.toString('base64') })),
  };
  return JSON.stringify(f, null, 2) + '\n';
}

export async function readKeystore(file: string): Promise<KeystoreData | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KekError('internal', `cannot read keystore ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e });
  }
  return parseKeystore(text, file);
}

/** Atomic replace: readers see the old file or the new one, never a torn write. */
export async function writeKeystore(file: string, ks: KeystoreData): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  try {
    await fh.writeFile(serialize(ks), 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  const dh = await fs.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Create the file exclusively; returns false if someone else created it first. */
export async function createKeystoreExclusive(file: string, ks: KeystoreData): Promise<boolean> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    const fh = await fs.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      await fh.writeFile(serialize(ks), 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

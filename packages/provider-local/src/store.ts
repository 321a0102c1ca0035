/**
 * Keystore files on disk. Beside `<keystore>` live:
 *   <keystore>.created    marker written with the first keystore: from then on a missing keystore is a loss
 *                         to restore, never a reason to mint a new one
 *   <keystore>.prev       the content before the last rotation (0600)
 *   <keystore>.recovered  written by a running broker that found its keystore deleted, emptied or replaced:
 *                         the complete keystore it still holds in memory (0600)
 *   <keystore>.lock       held by a writer (see lock.ts)
 * Every write is temp file + fsync + rename + fsync of the directory; a failed write (ENOSPC) removes its
 * temp file, so the keystore on disk is always complete and valid, or absent.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';
import { KekError } from '@kekbroker/core';
import { parseKeystore, serialize, type KeystoreData } from './keystore';

export const markerFileOf = (file: string): string => `${file}.created`;
export const prevFileOf = (file: string): string => `${file}.prev`;
export const recoveredFileOf = (file: string): string => `${file}.recovered`;

export type Inspection =
  | { kind: 'ok'; data: KeystoreData; stamp: string; mode: number }
  | { kind: 'missing' }
  | { kind: 'bad'; problem: string };

/** What an operator does about a missing or damaged keystore (also in docs/providers/local.md). */
export function restoreSteps(file: string): string {
  return `restore it from your backup (install -m 600 <backup> ${file}), or from ${recoveredFileOf(file)} ` +
    `(a copy written by the broker that noticed the loss) or ${prevFileOf(file)} (the content before the last rotation), ` +
    'whichever has the same keystore id and the most key versions (docs/providers/local.md, "Restore")';
}

/** The file mode a keystore must have: readable by its owner, by nobody else. */
export function modeProblem(mode: number): string | undefined {
  const m = mode & 0o777;
  const octal = m.toString(8).padStart(4, '0');
  if ((m & 0o400) === 0) return `mode is ${octal}: its owner cannot read it, so the next start would fail (chmod 600 the file)`;
  if ((m & 0o077) !== 0) return `mode is ${octal}: group or others may read the keys (chmod 600 the file)`;
  return undefined;
}

export function stampOf(st: { mtimeMs: number; ctimeMs: number; size: number; ino: number }): string {
  return `${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.ino}`;
}

/** Read, parse and check the keystore; never throws for a problem with the file itself. */
export async function inspectKeystore(file: string): Promise<Inspection> {
  let st;
  try {
    st = await fs.stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { kind: 'missing' } : { kind: 'bad', problem: `cannot stat it (${code ?? 'error'})` };
  }
  const mp = modeProblem(st.mode);
  if (mp) return { kind: 'bad', problem: mp };
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    return { kind: 'bad', problem: `cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  try {
    return { kind: 'ok', data: parseKeystore(text, file), stamp: stampOf(st), mode: st.mode };
  } catch (e) {
    const why = /\(([^)]*)\)/.exec((e as Error).message)?.[1] ?? 'invalid';
    return { kind: 'bad', problem: text.length === 0 ? 'it is empty (truncated)' : `it is not a valid keystore (${why})` };
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const dh = await fs.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

function writeError(file: string, e: unknown): KekError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  const hint = code === 'ENOSPC' ? ' (disk full)' : code === 'EACCES' || code === 'EROFS' ? ' (no write permission)' : '';
  return new KekError('unavailable', `cannot write ${file}: ${code}${hint}; the keystore on disk is unchanged`, { cause: e });
}

/** Write `text` to a fresh temp file beside `file`, fsynced; the caller renames or links it into place. */
async function writeTemp(file: string, text: string): Promise<string> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    return tmp;
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw writeError(file, e);
  }
}

/** Atomic replace: readers see the old file or the new one, never a torn write. */
export async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = await writeTemp(file, text);
  try {
    await fs.rename(tmp, file);
    await fsyncDir(path.dirname(file));
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw writeError(file, e);
  }
}

/** Atomic create: the file appears complete, or not at all; false if it already exists. */
export async function createAtomic(file: string, text: string): Promise<boolean> {
  const tmp = await writeTemp(file, text);
  try {
    await fs.link(tmp, file);
    await fsyncDir(path.dirname(file));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw writeError(file, e);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** Replace the keystore with `next`, keeping the current content in `.prev`. Call under the lock. */
export async function saveKeystore(file: string, next: KeystoreData): Promise<void> {
  const current = await fs.readFile(file, 'utf8');
  await writeAtomic(prevFileOf(file), current);
  await writeAtomic(file, serialize(next));
}

export async function writeRecovered(file: string, ks: KeystoreData): Promise<string> {
  const out = recoveredFileOf(file);
  await writeAtomic(out, serialize(ks));
  return out;
}

export async function writeMarker(file: string, ks: KeystoreData): Promise<void> {
  await writeAtomic(markerFileOf(file), `${JSON.stringify({ keystoreId: ks.keystoreId, created: new Date().toISOString() })}\n`);
}

export async function readMarker(file: string): Promise<{ keystoreId: string; created: string } | undefined> {
  try {
    return JSON.parse(await fs.readFile(markerFileOf(file), 'utf8')) as { keystoreId: string; created: string };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { keystoreId: 'unknown', created: 'unknown' }; // present but unreadable: still a keystore was here
  }
}

/** Remove temp files a killed writer left behind. Call under the lock: no live writer has one open. */
export async function cleanTemps(file: string): Promise<void> {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}.`;
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp')).map((n) => fs.rm(path.join(dir, n), { force: true })));
}

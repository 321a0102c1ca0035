/**
 * Writers of one keystore exclude each other with a lock file beside it (`<keystore>.lock`), created with
 * O_EXCL and holding the holder's pid, host and start time. Node has no flock(2); a lock file works on
 * every local filesystem and on the shared volumes two replicas may mount.
 *
 * A holder is only ever inside the lock for a few milliseconds (read, merge, write, rename). A lock is
 * stale when its holder is a dead process on this host, or when it is older than LOCK_STALE_MS (a holder
 * on another host, or a pid reused by an unrelated process): then it is broken, under a second
 * O_EXCL file so that two waiters never both break it and then both enter.
 */
import { hostname } from 'node:os';
import { promises as fs, constants as fsc } from 'node:fs';
import { KekError } from '@kekbroker/core';

/** A lock older than this is stale whoever holds it: the critical section is a few file writes. */
export const LOCK_STALE_MS = 30_000;
const RETRY_MS = 5;

interface LockInfo {
  pid: number;
  host: string;
  at: number;
}

export function lockFileOf(keystore: string): string {
  return `${keystore}.lock`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

async function readLock(file: string): Promise<{ info: LockInfo | undefined; mtimeMs: number } | undefined> {
  try {
    const [text, st] = await Promise.all([fs.readFile(file, 'utf8'), fs.stat(file)]);
    let info: LockInfo | undefined;
    try {
      info = JSON.parse(text) as LockInfo;
    } catch {
      info = undefined; // torn by a crash between create and write: judged by age alone
    }
    return { info, mtimeMs: st.mtimeMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function isStale(l: { info: LockInfo | undefined; mtimeMs: number }): boolean {
  if (Date.now() - l.mtimeMs > LOCK_STALE_MS) return true;
  return l.info !== undefined && l.info.host === hostname() && l.info.pid !== process.pid && !pidAlive(l.info.pid);
}

async function tryCreate(file: string, content: string): Promise<boolean> {
  let fh;
  try {
    fh = await fs.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw lockError(file, e);
  }
  try {
    await fh.writeFile(content);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fs.rm(file, { force: true }); // never leave an empty lock behind (ENOSPC)
    throw lockError(file, e);
  }
  await fh.close();
  return true;
}

function lockError(file: string, e: unknown): KekError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  return new KekError('unavailable', `cannot create lock file ${file}: ${code}${code === 'ENOSPC' ? ' (disk full)' : ''}`, { cause: e });
}

/** Remove a stale lock, unless someone else is already breaking it or it changed meanwhile. */
async function breakStale(file: string, seen: { mtimeMs: number }): Promise<void> {
  const breaker = `${file}.break`;
  const b = await readLock(breaker);
  if (b && Date.now() - b.mtimeMs > LOCK_STALE_MS) await fs.rm(breaker, { force: true });
  if (!(await tryCreate(breaker, JSON.stringify({ pid: process.pid, host: hostname(), at: Date.now() })))) return;
  try {
    const now = await readLock(file);
    if (now && now.mtimeMs === seen.mtimeMs && isStale(now)) await fs.rm(file, { force: true });
  } finally {
    await fs.rm(breaker, { force: true });
  }
}

/**
 * Run `fn` holding the keystore's lock. Waits (polling) while another live writer holds it, until
 * `signal` aborts; then fails as `unavailable`, naming the holder.
 */
export async function withKeystoreLock<T>(keystore: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const file = lockFileOf(keystore);
  const me = JSON.stringify({ pid: process.pid, host: hostname(), at: Date.now() } satisfies LockInfo);
  for (;;) {
    if (await tryCreate(file, me)) break;
    const held = await readLock(file);
    if (held && isStale(held)) {
      await breakStale(file, held);
      continue;
    }
    if (signal.aborted) {
      const who = held?.info ? `pid ${held.info.pid} on ${held.info.host}` : 'another process';
      throw new KekError('unavailable', `keystore ${keystore} is locked by ${who} (${file}); if no kekbroker process is running, remove the lock file`);
    }
    await new Promise((r) => setTimeout(r, RETRY_MS + Math.random() * RETRY_MS));
  }
  try {
    return await fn();
  } finally {
    // Remove only our own lock: had we overrun LOCK_STALE_MS, another writer may hold a new one.
    const mine = await fs.readFile(file, 'utf8').then((t) => t === me, () => false);
    if (mine) await fs.rm(file, { force: true });
  }
}

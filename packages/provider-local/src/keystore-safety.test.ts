/**
 * The keystore never loses a key version: concurrent writers, a keystore deleted, emptied or chmodded
 * under a running provider, refused re-creation, stale locks and leftover temp files. Real files; the
 * cross-process version (two broker processes) is in test/src/e2e/local-keystore.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isKekError, type WrappedKey } from '@kekbroker/core';
import { addVersion, mergeKeystores, newKeystore } from './keystore';
import { lockFileOf } from './lock';
import { LocalProvider } from './provider';

const ctx = { tenant: 't', keyring: 'k', envelopeVersion: 1 };
const sig = (): AbortSignal => AbortSignal.timeout(10_000);

async function keystorePath(): Promise<string> {
  return path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'kb-local-safety-')), 'data', 'keystore.json');
}

async function wrapSome(p: LocalProvider, n: number, fill: number): Promise<Array<{ w: WrappedKey; pt: Buffer }>> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const pt = Buffer.alloc(32, fill + i);
    out.push({ w: await p.wrap(pt, ctx, sig()), pt });
  }
  return out;
}

test('two providers rotating one keystore at once keep every version: all wraps unwrap after a reopen', async () => {
  const file = await keystorePath();
  const a = await LocalProvider.open({ id: 'local', keystore: file });
  const b = await LocalProvider.open({ id: 'local', keystore: file });
  const wraps: Array<{ w: WrappedKey; pt: Buffer }> = [];
  for (let round = 0; round < 20; round++) {
    await Promise.all([a.rotate(sig()), b.rotate(sig())]);
    wraps.push(...(await wrapSome(a, 1, round)), ...(await wrapSome(b, 1, 100 + round)));
  }
  const ks = JSON.parse(await fs.readFile(file, 'utf8')) as { keys: Array<{ version: number }> };
  assert.deepEqual(ks.keys.map((k) => k.version), Array.from({ length: 41 }, (_, i) => i + 1), '1 + 40 rotations, none lost');
  const c = await LocalProvider.open({ id: 'local', keystore: file });
  for (const { w, pt } of wraps) assert.deepEqual(await c.unwrap(w, ctx, sig()), pt);
  await fs.access(lockFileOf(file)).then(() => assert.fail('lock file left behind'), () => undefined);
});

for (const [what, damage, reason] of [
  ['deleted', (f: string) => fs.rm(f), /the file was deleted/],
  ['truncated', (f: string) => fs.truncate(f, 0), /it is empty \(truncated\)/],
  ['chmod 000', (f: string) => fs.chmod(f, 0o000), /mode is 0000: its owner cannot read it/],
  ['overwritten with garbage', (f: string) => fs.writeFile(f, '{"format":"nope"}'), /not a valid keystore \(wrong format marker\)/],
] as const) {
  test(`keystore ${what} under a running provider: unhealthy at the next describe, wraps refused, unwraps served, nothing lost`, async () => {
    const file = await keystorePath();
    const p = await LocalProvider.open({ id: 'local', keystore: file });
    await p.rotate(sig());
    const before = await wrapSome(p, 3, 1);
    await damage(file);
    const err = await p.describe(sig()).then(() => undefined, (e: unknown) => e);
    assert.ok(isKekError(err) && err.code === 'unavailable', String(err));
    assert.match(err.message, reason);
    assert.match(err.message, /keystore\.json\.recovered/);
    await assert.rejects(p.probe(sig()), reason);
    await assert.rejects(p.wrap(Buffer.alloc(32, 9), ctx, sig()), reason, 'no new wrap under a key that is not safely on disk');
    await assert.rejects(p.rotate(sig()), reason);
    for (const { w, pt } of before) assert.deepEqual(await p.unwrap(w, ctx, sig()), pt, 'unwrap from memory still works');

    // A restart refuses, naming the restore steps, and does not touch what is there.
    const start = await LocalProvider.open({ id: 'local', keystore: file }).then(() => undefined, (e: unknown) => e);
    assert.ok(isKekError(start), String(start));
    assert.match(start.message, /refusing to (start|create a new one)/);
    assert.match(start.message, /restore it from your backup/);

    // The operator restores the copy the provider saved; everything decrypts, and health comes back.
    await fs.copyFile(`${file}.recovered`, file);
    await fs.chmod(file, 0o600);
    assert.equal((await fs.stat(`${file}.recovered`)).mode & 0o777, 0o600);
    await p.describe(sig());
    await p.wrap(Buffer.alloc(32, 9), ctx, sig());
    const q = await LocalProvider.open({ id: 'local', keystore: file });
    for (const { w, pt } of before) assert.deepEqual(await q.unwrap(w, ctx, sig()), pt);
  });
}

test('an older copy restored under a running provider (missing versions) is flagged, not accepted', async () => {
  const file = await keystorePath();
  const p = await LocalProvider.open({ id: 'local', keystore: file });
  const v1 = await fs.readFile(file);
  await p.rotate(sig());
  assert.deepEqual(await fs.readFile(`${file}.prev`), v1, '.prev holds the content before the rotation');
  assert.equal((await fs.stat(`${file}.prev`)).mode & 0o777, 0o600);
  await fs.writeFile(file, v1, { mode: 0o600 });
  await assert.rejects(p.describe(sig()), /lacks key version\(s\) 2/);
});

test('a keystore that existed is never silently re-created; create: false refuses even the first start', async () => {
  const file = await keystorePath();
  await LocalProvider.open({ id: 'local', keystore: file });
  await fs.rm(file);
  await assert.rejects(LocalProvider.open({ id: 'local', keystore: file }), /is missing, but .*keystore\.json\.created shows keystore [0-9a-f]{16} was created here/);
  await assert.rejects(fs.access(file), 'nothing was created');
  const fresh = await keystorePath();
  await assert.rejects(LocalProvider.open({ id: 'local', keystore: fresh, create: false }), /does not exist and create is false/);
});

test('start removes temp files a killed writer left, and breaks a lock whose holder is dead', async () => {
  const file = await keystorePath();
  await LocalProvider.open({ id: 'local', keystore: file });
  const dir = path.dirname(file);
  await fs.writeFile(path.join(dir, '.keystore.json.4242.deadbeef.tmp'), '');
  const dead = spawn(process.execPath, ['-e', '0']);
  const deadPid = dead.pid as number;
  await new Promise((r) => dead.once('exit', r));
  await fs.writeFile(lockFileOf(file), JSON.stringify({ pid: deadPid, host: os.hostname(), at: Date.now() }));
  const p = await LocalProvider.open({ id: 'local', keystore: file });
  assert.deepEqual((await fs.readdir(dir)).filter((n) => n.endsWith('.tmp') || n.endsWith('.lock')), []);
  await p.rotate(sig());
});

test('a lock held by a live process makes a writer wait, then fail naming the holder', async () => {
  const file = await keystorePath();
  const p = await LocalProvider.open({ id: 'local', keystore: file });
  await fs.writeFile(lockFileOf(file), JSON.stringify({ pid: process.ppid, host: os.hostname(), at: Date.now() }));
  await assert.rejects(p.rotate(AbortSignal.timeout(300)), new RegExp(`locked by pid ${process.ppid}`));
  await fs.rm(lockFileOf(file));
  await p.rotate(sig());
});

test('merging two copies keeps the union; one version with two different keys is refused', () => {
  const base = newKeystore();
  const a = addVersion(base);
  const b = { ...base, versions: base.versions.map((v) => ({ ...v, key: Buffer.from(v.key) })) };
  const { merged, missingOnDisk } = mergeKeystores(a, b);
  assert.deepEqual(merged.versions.map((v) => v.version), [1, 2]);
  assert.deepEqual(missingOnDisk, [2]);
  const forged = { ...base, versions: [{ ...base.versions[0]!, key: Buffer.alloc(32, 1) }] };
  assert.throws(() => mergeKeystores(a, forged), /key version 1 differs between memory and disk/);
});

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isKekError } from '@kekbroker/core';
import { LocalProvider } from './provider';

const ctx = { tenant: 't', keyring: 'k', envelopeVersion: 1 };
const sig = (): AbortSignal => AbortSignal.timeout(5000);

async function dir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'kb-local-'));
}

test('creates the keystore 0600 on first start and reuses it afterwards', async () => {
  const d = await dir();
  const file = path.join(d, 'sub', 'ks.json');
  const a = await LocalProvider.open({ id: 'local', keystore: file });
  assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
  const w = await a.wrap(Buffer.alloc(32, 1), ctx, sig());
  const b = await LocalProvider.open({ id: 'local', keystore: file });
  assert.equal((await b.describe(sig())).currentVersionRef, w.keyVersionRef);
  assert.deepEqual(await b.unwrap(w, ctx, sig()), Buffer.alloc(32, 1));
});

test('refuses to start on a keystore it cannot parse, and leaves the file untouched', async () => {
  const d = await dir();
  const file = path.join(d, 'ks.json');
  for (const bad of ['not json', '{"format":"something-else"}', JSON.stringify({ format: 'kekbroker-local-keystore', formatVersion: 1, keystoreId: '0123456789abcdef', primary: 1, keys: [{ version: 1, key: 'c2hvcnQ=' }] })]) {
    await fs.writeFile(file, bad);
    await assert.rejects(LocalProvider.open({ id: 'local', keystore: file }), (e: unknown) => isKekError(e) && /refusing to start rather than overwrite it/.test(e.message));
    assert.equal(await fs.readFile(file, 'utf8'), bad);
  }
});

test('a rotation by another process is picked up (reload on change)', async () => {
  const d = await dir();
  const file = path.join(d, 'ks.json');
  const a = await LocalProvider.open({ id: 'local', keystore: file });
  const b = await LocalProvider.open({ id: 'local', keystore: file });
  const rotated = await a.rotate(sig());
  const w = await a.wrap(Buffer.alloc(32, 2), ctx, sig());
  assert.deepEqual(await b.unwrap(w, ctx, sig()), Buffer.alloc(32, 2), 'b reloads to find the new version');
  assert.equal((await b.describe(sig())).currentVersionRef, rotated.currentVersionRef);
});

test('errors never contain key bytes', async () => {
  const d = await dir();
  const p = await LocalProvider.open({ id: 'local', keystore: path.join(d, 'ks.json') });
  const ks = JSON.parse(await fs.readFile(path.join(d, 'ks.json'), 'utf8')) as { keys: Array<{ key: string }> };
  const w = await p.wrap(Buffer.alloc(32, 3), ctx, sig());
  const bad = Buffer.from(w.wrapped);
  bad[20] = (bad[20] ?? 0) ^ 1;
  const err = await p.unwrap({ ...w, wrapped: bad }, ctx, sig()).catch((e: unknown) => e as Error);
  assert.ok(err instanceof Error);
  assert.ok(!err.message.includes(ks.keys[0]!.key));
  assert.ok(!JSON.stringify(err).includes(ks.keys[0]!.key));
});

/**
 * The transit API driven by node-vault (the most used Node Vault client) and by raw HTTP against a real
 * broker process: node-vault's own transit methods and its generic read/write, batches with every answer
 * checked, Vault's behaviours table, rotation / min_decryption_version / rewrap, tenant isolation, and the
 * KMS calls that 10,000 encrypts cost (counted by the broker's provider-call metric).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import nodeVault from 'node-vault';
import { restartBroker } from '../helpers/processes';
import { TOKENS, b64, call, startTransitBroker, type Json, type TransitBroker } from '../helpers/transit';

type Client = ReturnType<typeof nodeVault>;

async function apiError(p: Promise<unknown>): Promise<{ message: string; status: number; body: Json }> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { response?: { statusCode: number; body: Json } };
    assert.equal(err.constructor.name, 'ApiResponseError', `expected node-vault's ApiResponseError, got ${String(e)}`);
    return { message: err.message, status: err.response?.statusCode ?? 0, body: err.response?.body };
  }
  throw new Error('expected the call to fail');
}

async function providerCalls(b: TransitBroker, op: 'wrap' | 'unwrap'): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${b.ports.http}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith('kekbroker_provider_calls_total{') && line.includes(`op="${op}"`)) n += Number(line.split(' ').pop());
  return n;
}

describe('transit API through node-vault against a real broker', { timeout: 180_000 }, () => {
  let b: TransitBroker;
  let vault: Client;
  let vaultB: Client;
  const secrets: string[] = [];
  const secret = (n = 48): string => {
    const s = randomBytes(n).toString('base64');
    secrets.push(s);
    return s;
  };

  before(async () => {
    b = await startTransitBroker();
    vault = nodeVault({ endpoint: b.url, token: TOKENS.admin });
    vaultB = nodeVault({ endpoint: b.url, token: TOKENS.other });
  });
  after(async () => {
    const logs = await b?.proc.logs();
    await b?.proc.kill();
    // No plaintext and no token in any log line; the audit stream names the op, tenant and key.
    for (const s of secrets) assert.ok(!logs.includes(s), 'a plaintext reached the broker log');
    for (const t of Object.values(TOKENS)) assert.ok(!logs.includes(t), 'a token reached the broker log');
    assert.match(logs, /"stream":"audit","op":"transit.encrypt","tenant":"dev","transitKey":"app"/);
  });

  it("node-vault's own transit methods: encryptData, decryptData, rewrapData, transitReadKey, transitCreateKey", async () => {
    const pt = secret();
    const enc = await vault.encryptData({ name: 'app', plaintext: pt });
    assert.match(enc.data.ciphertext, /^vault:v\d+:/);
    assert.equal(enc.data.key_version, Number(/^vault:v(\d+):/.exec(enc.data.ciphertext)?.[1]));
    assert.equal((await vault.decryptData({ name: 'app', ciphertext: enc.data.ciphertext })).data.plaintext, pt);
    const re = await vault.rewrapData({ name: 'app', ciphertext: enc.data.ciphertext });
    assert.equal((await vault.decryptData({ name: 'app', ciphertext: re.data.ciphertext })).data.plaintext, pt);
    const key = await vault.transitReadKey({ name: 'app' });
    assert.equal(key.data.name, 'app');
    assert.equal(key.data.latest_version, enc.data.key_version);
    assert.ok(key.data.keys[String(key.data.latest_version)] !== undefined);
    await vault.transitCreateKey({ name: 'app' }); // a configured key: 204, as Vault answers a create
    const e = await apiError(vault.transitCreateKey({ name: 'not-configured' }));
    assert.equal(e.status, 400);
    assert.match(e.message, /declared in config/);
  });

  it('lists keys with GET ?list=true (node-vault list with noCustomHTTPVerbs); LIST gets a clear 405', async () => {
    const lister = nodeVault({ endpoint: b.url, token: TOKENS.admin, noCustomHTTPVerbs: true });
    assert.deepEqual((await lister.list('transit/keys')).data.keys, ['app', 'orders']);
    assert.deepEqual((await nodeVault({ endpoint: b.url, token: TOKENS.other, noCustomHTTPVerbs: true }).list('transit/keys')).data.keys, ['b-key']);
    const e = await apiError(vault.transitListKeys());
    assert.equal(e.status, 405);
    assert.match(e.message, /LIST method is not supported.*GET with \?list=true/);
  });

  it('batch_input of 100 through the generic write: every item checked, references echoed', async () => {
    const pts = Array.from({ length: 100 }, () => secret(32));
    const enc = await vault.write('transit/encrypt/app', { batch_input: pts.map((plaintext, i) => ({ plaintext, reference: `r${i}` })) });
    assert.equal(enc.data.batch_results.length, 100);
    const dec = await vault.write('transit/decrypt/app', { batch_input: enc.data.batch_results.map((r: Json) => ({ ciphertext: r.ciphertext, reference: r.reference })) });
    dec.data.batch_results.forEach((r: Json, i: number) => {
      assert.equal(r.reference, `r${i}`);
      assert.equal(r.plaintext, pts[i]);
    });
  });

  it('derived keys, associated_data and datakey', async () => {
    const pt = secret();
    const ctx = b64('customer-42');
    const enc = await vault.write('transit/encrypt/orders', { plaintext: pt, context: ctx, associated_data: b64('order-7') });
    assert.equal((await vault.write('transit/decrypt/orders', { ciphertext: enc.data.ciphertext, context: ctx, associated_data: b64('order-7') })).data.plaintext, pt);
    const wrongCtx = await apiError(vault.write('transit/decrypt/orders', { ciphertext: enc.data.ciphertext, context: b64('customer-43'), associated_data: b64('order-7') }));
    assert.equal(wrongCtx.status, 400);
    assert.match(wrongCtx.message, /message authentication failed/);

    const dk = await vault.write('transit/datakey/plaintext/app', { bits: 256 });
    assert.equal(Buffer.from(dk.data.plaintext, 'base64').length, 32);
    assert.equal((await vault.write('transit/decrypt/app', { ciphertext: dk.data.ciphertext })).data.plaintext, dk.data.plaintext);
    const wrapped = await vault.write('transit/datakey/wrapped/app', { bits: 512 });
    assert.equal(wrapped.data.plaintext, undefined);
    assert.equal(Buffer.from((await vault.write('transit/decrypt/app', { ciphertext: wrapped.data.ciphertext })).data.plaintext, 'base64').length, 64);
  });

  describe("Vault's behaviours", () => {
    let good: string;
    before(async () => {
      good = (await vault.encryptData({ name: 'app', plaintext: b64('x') })).data.ciphertext;
    });
    const cases: Array<[string, () => [string, string, unknown?], number, RegExp | undefined]> = [
      ['missing prefix', () => ['POST', 'decrypt/app', { ciphertext: 'AAAA' }], 400, /^invalid ciphertext: no prefix$/],
      ['wrong number of fields', () => ['POST', 'decrypt/app', { ciphertext: 'vault:v1' }], 400, /^invalid ciphertext: wrong number of fields$/],
      ['version not a number', () => ['POST', 'decrypt/app', { ciphertext: 'vault:vX:AAAA' }], 400, /^invalid ciphertext: version number could not be decoded$/],
      ['bad base64 ciphertext', () => ['POST', 'decrypt/app', { ciphertext: 'vault:v1:%%%' }], 400, /^invalid ciphertext: could not decode base64$/],
      ['version too new', () => ['POST', 'decrypt/app', { ciphertext: good.replace(/^vault:v\d+:/, 'vault:v999:') }], 400, /^invalid ciphertext: version is too new$/],
      ['tampered ciphertext', () => ['POST', 'decrypt/app', { ciphertext: good.slice(0, -6) + (good.endsWith('AAAA==') ? 'BBBB==' : 'AAAA==') }], 400, /invalid ciphertext|message authentication failed/],
      ['bad base64 plaintext', () => ['POST', 'encrypt/app', { plaintext: 'not base64' }], 400, /^failed to base64-decode plaintext$/],
      ['missing plaintext', () => ['POST', 'encrypt/app', {}], 400, /^missing plaintext to encrypt$/],
      ['missing ciphertext', () => ['POST', 'decrypt/app', {}], 400, /^missing ciphertext to decrypt$/],
      ['derived key without context', () => ['POST', 'encrypt/orders', { plaintext: b64('x') }], 400, /^missing 'context' for key derivation/],
      ['mixed context in a batch', () => ['POST', 'encrypt/orders', { batch_input: [{ plaintext: b64('a'), context: b64('c') }, { plaintext: b64('b') }] }], 400, /^context should be set either in all the request blocks or in none$/],
      ['empty batch', () => ['POST', 'encrypt/app', { batch_input: [] }], 400, /^missing batch input to process$/],
      ['unknown key', () => ['POST', 'encrypt/nope', { plaintext: b64('x') }], 400, /^encryption key not found$/],
      ['key_version too new', () => ['POST', 'encrypt/app', { plaintext: b64('x'), key_version: 999 }], 400, /higher than the latest key version/],
      ['plaintext over the limit', () => ['POST', 'encrypt/app', { plaintext: randomBytes(70_000).toString('base64') }], 400, /plaintext must NOT have more than/],
      ['plaintext of the wrong type', () => ['POST', 'encrypt/app', { plaintext: { a: 1 } }], 400, /plaintext must be string/],
      ['body not JSON', () => ['POST', 'encrypt/app', '{"plaintext": '], 400, /^failed to parse JSON input/],
      ['body not an object', () => ['POST', 'encrypt/app', '[1,2]'], 400, /must be a JSON object/],
      ['datakey type', () => ['POST', 'datakey/secret/app', {}], 400, /^invalid type$/],
      ['datakey bits', () => ['POST', 'datakey/plaintext/app', { bits: 100 }], 400, /^invalid bits length$/],
      ['GET keys without list', () => ['GET', 'keys'], 405, /^unsupported operation$/],
      ['unsupported path', () => ['POST', 'hmac/app', {}], 404, /^unsupported path$/],
      ['delete a key', () => ['DELETE', 'keys/app'], 400, /deletion is not allowed/],
      ['create a configured key: 204', () => ['POST', 'keys/app', {}], 204, undefined],
      ['set config: 204', () => ['POST', 'keys/app/config', { deletion_allowed: false }], 204, undefined],
      ['read a key: 200', () => ['GET', 'keys/app'], 200, undefined],
      ['min_decryption_version above latest', () => ['POST', 'keys/app/config', { min_decryption_version: 999 }], 400, /greater than the latest version/],
    ];
    for (const [name, make, status, message] of cases) {
      it(`${name} -> ${status}`, async () => {
        const [method, path, body] = make();
        const r = await call(b, method, `/v1/transit/${path}`, body);
        assert.equal(r.status, status, JSON.stringify(r.body));
        if (message) assert.match(r.body.errors[0], message);
        if (status === 204) assert.equal(r.body, undefined);
        if (status === 200) assert.equal(r.body.data.name, 'app');
      });
    }

    it('partial failure: 400 by default, partial_failure_response_code when some items succeeded, per-item errors', async () => {
      const batch = [{ plaintext: b64('ok'), reference: 'good' }, { plaintext: '!!', reference: 'bad' }];
      const plain = await call(b, 'POST', '/v1/transit/encrypt/app', { batch_input: batch });
      assert.equal(plain.status, 400);
      const [ok, bad] = plain.body.data.batch_results;
      assert.match(ok.ciphertext, /^vault:v\d+:/);
      assert.equal(ok.reference, 'good');
      assert.equal(bad.error, 'failed to base64-decode plaintext');
      assert.equal(bad.reference, 'bad');
      const partial = await call(b, 'POST', '/v1/transit/encrypt/app', { batch_input: batch, partial_failure_response_code: 207 });
      assert.equal(partial.status, 207);
      const allBad = await call(b, 'POST', '/v1/transit/encrypt/app', { batch_input: [batch[1]], partial_failure_response_code: 207 });
      assert.equal(allBad.status, 400, 'every item failed: the partial code does not apply');
    });
  });

  it('rotation: new encrypts use v(N+1), old ciphertexts decrypt, rewrap moves them, min_decryption_version refuses the old', async () => {
    const pt = secret();
    const before = await vaultB.transitReadKey({ name: 'b-key' });
    const n = before.data.latest_version as number;
    const old = (await vaultB.encryptData({ name: 'b-key', plaintext: pt })).data;
    assert.equal(old.key_version, n);
    const rotated = await vaultB.write('transit/keys/b-key/rotate', {});
    assert.equal(rotated.data.latest_version, n + 1);
    const fresh = (await vaultB.encryptData({ name: 'b-key', plaintext: pt })).data;
    assert.equal(fresh.key_version, n + 1);
    assert.match(fresh.ciphertext, new RegExp(`^vault:v${n + 1}:`));
    assert.equal((await vaultB.decryptData({ name: 'b-key', ciphertext: old.ciphertext })).data.plaintext, pt);
    const moved = (await vaultB.rewrapData({ name: 'b-key', ciphertext: old.ciphertext })).data;
    assert.equal(moved.key_version, n + 1);
    await vaultB.write('transit/keys/b-key/config', { min_decryption_version: n + 1 });
    assert.equal((await vaultB.read('transit/keys/b-key')).data.min_decryption_version, n + 1);
    const e = await apiError(vaultB.decryptData({ name: 'b-key', ciphertext: old.ciphertext }));
    assert.equal(e.status, 400);
    assert.equal(e.message, 'ciphertext or signature version is disallowed by policy (too old)');
    assert.equal((await vaultB.decryptData({ name: 'b-key', ciphertext: moved.ciphertext })).data.plaintext, pt);
    // Versions are the KMS's own: a restarted broker (every cache cold) reports and enforces the same.
    b = { ...b, ...(await restartBroker(b)) };
    assert.equal((await vaultB.transitReadKey({ name: 'b-key' })).data.latest_version, n + 1);
    assert.equal((await apiError(vaultB.decryptData({ name: 'b-key', ciphertext: old.ciphertext }))).status, 400);
    assert.equal((await vaultB.decryptData({ name: 'b-key', ciphertext: moved.ciphertext })).data.plaintext, pt);
  });

  it('tenant isolation: a token of another tenant gets 403 on every endpoint and nothing decrypted', async () => {
    const pt = secret();
    const ct = (await vault.encryptData({ name: 'app', plaintext: pt })).data.ciphertext as string;
    const endpoints: Array<[string, string, unknown?]> = [
      ['POST', 'encrypt/app', { plaintext: b64('x') }], ['POST', 'decrypt/app', { ciphertext: ct }], ['POST', 'rewrap/app', { ciphertext: ct }],
      ['POST', 'datakey/plaintext/app', {}], ['POST', 'datakey/wrapped/app', {}], ['GET', 'keys/app'], ['POST', 'keys/app'],
      ['DELETE', 'keys/app'], ['POST', 'keys/app/rotate', {}], ['POST', 'keys/app/config', { min_decryption_version: 1 }],
      ['POST', 'decrypt/app', { batch_input: [{ ciphertext: ct }] }],
    ];
    for (const [method, path, body] of endpoints) {
      for (const token of [TOKENS.other, 'hvs.not-a-token', '']) {
        const r = await call(b, method, `/v1/transit/${path}`, body, token);
        assert.equal(r.status, 403, `${method} ${path} with ${token || 'no token'}`);
        assert.deepEqual(r.body, { errors: ['permission denied'] });
      }
    }
    // Tenant B, under its own key, cannot open tenant A's ciphertext either.
    const r = await call(b, 'POST', '/v1/transit/decrypt/b-key', { ciphertext: ct }, TOKENS.other);
    assert.equal(r.status, 400);
    assert.equal(r.body.data, undefined);
    // A narrower token of the same tenant: only encrypt/decrypt on "app".
    for (const [method, path, body] of [['POST', 'rewrap/app', { ciphertext: ct }], ['POST', 'keys/app/rotate', {}], ['GET', 'keys/app'], ['POST', 'encrypt/orders', { plaintext: b64('x'), context: b64('c') }]] as const) {
      assert.equal((await call(b, method, `/v1/transit/${path}`, body, TOKENS.app)).status, 403, `${method} ${path}`);
    }
    assert.equal((await call(b, 'POST', '/v1/transit/decrypt/app', { ciphertext: ct }, TOKENS.app)).body.data.plaintext, pt);
  });

  it('10,000 encrypts cost at most one KMS wrap; decrypting them costs none, and one unwrap after a restart', async () => {
    // Warm: a data key exists for (app, current generation, dev).
    await vault.encryptData({ name: 'app', plaintext: b64('warm') });
    const wraps0 = await providerCalls(b, 'wrap');
    const unwraps0 = await providerCalls(b, 'unwrap');
    const batches: Array<{ pts: string[]; cts: string[] }> = [];
    for (let i = 0; i < 100; i++) {
      const pts = Array.from({ length: 100 }, () => randomBytes(24).toString('base64'));
      const r = await vault.write('transit/encrypt/app', { batch_input: pts.map((plaintext) => ({ plaintext })) });
      batches.push({ pts, cts: r.data.batch_results.map((x: Json) => x.ciphertext) });
    }
    assert.ok((await providerCalls(b, 'wrap')) - wraps0 <= 1, 'at most one KMS wrap for 10,000 encrypts');
    for (const { pts, cts } of batches.slice(0, 20)) {
      const r = await vault.write('transit/decrypt/app', { batch_input: cts.map((ciphertext) => ({ ciphertext })) });
      assert.deepEqual(r.data.batch_results.map((x: Json) => x.plaintext), pts);
    }
    assert.equal((await providerCalls(b, 'unwrap')) - unwraps0, 0, 'decrypts hit the keyring cache');
    b = { ...b, ...(await restartBroker(b)) };
    const { pts, cts } = batches[99] as { pts: string[]; cts: string[] };
    const r = await vault.write('transit/decrypt/app', { batch_input: cts.map((ciphertext) => ({ ciphertext })) });
    assert.deepEqual(r.data.batch_results.map((x: Json) => x.plaintext), pts);
    assert.equal(await providerCalls(b, 'unwrap'), 1, 'a cold broker opens 100 ciphertexts of one data key with one KMS unwrap');
  });
});

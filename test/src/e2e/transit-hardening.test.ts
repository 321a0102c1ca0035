/**
 * The transit listener under hostile and operational conditions, on a non-default mount: node-vault's generic
 * calls on that mount, HTTP fuzz (random JSON, random bytes, huge bodies, deep nesting, garbage on the raw
 * socket) with 0 crashes and 0 5xx, the per-tenant rate limit (429 "rate limit quota exceeded"), an admin
 * cache invalidation reaching the data keys, and token reload on SIGHUP.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import nodeVault from 'node-vault';
import { parseCiphertext } from '@kekbroker/transit';
import { waitFor } from '../helpers/processes';
import { TOKENS, b64, call, sha, startTransitBroker, type TransitBroker } from '../helpers/transit';

const MOUNT = 'kv-transit';

/**
 * POST on a raw socket, resolving with what the server answered. A server may answer 413 and close before it
 * has read a huge body: HTTP clients then report the write error (EPIPE) instead of the answer.
 */
function rawPost(port: number, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    // Headers first: a server that refuses on Content-Length answers at once; sending the body regardless would
    // make the kernel reset the connection (unread data at close) and could discard that answer.
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: ${TOKENS.admin}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`);
      setTimeout(() => {
        if (got === '' && !s.destroyed) s.end(body);
      }, 300);
    });
    let got = '';
    s.on('data', (d) => (got += String(d)));
    s.on('error', () => undefined); // EPIPE/ECONNRESET once the server has answered and closed
    s.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0);
      const text = got.slice(got.indexOf('\r\n\r\n') + 4);
      // A chunked body would need decoding; fastify sends these small error bodies with content-length.
      resolve({ status, body: text });
    });
  });
}

describe('transit API: non-default mount, fuzz, rate limit, SIGHUP', { timeout: 240_000 }, () => {
  let b: TransitBroker;
  let good: string;

  before(async () => {
    b = await startTransitBroker(MOUNT);
    good = (await call(b, 'POST', `/v1/${MOUNT}/encrypt/app`, { plaintext: b64('fuzz-seed') })).body.data.ciphertext;
  });
  after(async () => {
    await b?.proc.kill();
  });

  it("node-vault's generic read/write on a non-default mount; the default path is not served", async () => {
    const vault = nodeVault({ endpoint: b.url, token: TOKENS.admin });
    const pt = b64('mounted elsewhere');
    const enc = await vault.write(`${MOUNT}/encrypt/app`, { plaintext: pt });
    assert.equal((await vault.write(`${MOUNT}/decrypt/app`, { ciphertext: enc.data.ciphertext })).data.plaintext, pt);
    assert.equal((await vault.read(`${MOUNT}/keys/app`)).data.name, 'app');
    assert.equal((await call(b, 'POST', '/v1/transit/encrypt/app', { plaintext: pt })).status, 404);
  });

  it('serves its OpenAPI document, generated from the route schemas, without a token', async () => {
    const r = await fetch(`${b.url}/v1/${MOUNT}/openapi.json`);
    assert.equal(r.status, 200);
    const doc = (await r.json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } }>> };
    assert.match(doc.openapi, /^3\./);
    for (const p of ['encrypt', 'decrypt', 'rewrap']) {
      const post = doc.paths[`/v1/${MOUNT}/${p}/{name}`]?.['post'];
      assert.ok(post, `${p} documented`);
      const props = Object.values(post.requestBody?.content ?? {})[0]?.schema.properties ?? {};
      assert.ok('batch_input' in props && 'partial_failure_response_code' in props, `${p} body schema documented`);
    }
    assert.ok(doc.paths[`/v1/${MOUNT}/keys/{name}/config`]);
    assert.ok(doc.paths[`/v1/${MOUNT}/datakey/{type}/{name}`]);
  });

  it('fuzz: random bodies, paths, methods and content types: no 5xx, no crash', async () => {
    const paths = ['encrypt/app', 'decrypt/app', 'rewrap/app', 'datakey/plaintext/app', 'datakey/wrapped/orders', 'keys/app', 'keys/app/config', 'keys', 'encrypt/orders', 'decrypt/orders'];
    const field = fc.oneof(fc.string(), fc.base64String(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 3 }), fc.constant(good), fc.constant(good.replace(/.$/, '')));
    const item = fc.record({ plaintext: field, ciphertext: field, context: field, key_version: field, associated_data: field, reference: field, bits: field }, { requiredKeys: [] });
    const body = fc.oneof(
      item.map((x) => JSON.stringify(x)),
      fc.record({ batch_input: fc.oneof(fc.array(item, { maxLength: 20 }), field), partial_failure_response_code: field }, { requiredKeys: [] }).map((x) => JSON.stringify(x)),
      fc.jsonValue({ maxDepth: 6 }).map((x) => JSON.stringify(x)),
      fc.uint8Array({ maxLength: 2048 }).map((u) => Buffer.from(u).toString('latin1')),
      fc.string({ maxLength: 512 }),
    );
    const req = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
      path: fc.oneof(fc.constantFrom(...paths), fc.webPath()),
      body,
      contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', ''),
    });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(req, async (r) => {
        n++;
        const init: RequestInit = { method: r.method, headers: { 'x-vault-token': TOKENS.admin, ...(r.contentType ? { 'content-type': r.contentType } : {}) } };
        if (r.method !== 'GET') init.body = r.body;
        const res = await fetch(`${b.url}/v1/${MOUNT}/${r.path.replace(/^\//, '')}`, init);
        const text = await res.text();
        assert.ok(res.status < 500, `${r.method} ${r.path} -> ${res.status} ${text}`);
        if (res.status >= 400 && res.status !== 207) assert.ok(Array.isArray(JSON.parse(text).errors) || JSON.parse(text).data?.batch_results, text);
      }),
      { numRuns: 1500 },
    );
    assert.equal(n, 1500);
    assert.ok(b.proc.alive);
  });

  it('huge bodies and deep nesting: 413 or 400, never 5xx', async () => {
    const deepArray = '['.repeat(200_000) + ']'.repeat(200_000);
    const deepObject = '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000);
    const huge = JSON.stringify({ plaintext: 'A'.repeat(5 * 1024 * 1024) });
    const bigBatch = JSON.stringify({ batch_input: Array.from({ length: 5000 }, () => ({ plaintext: 'QQ==' })) });
    for (const body of [deepArray, deepObject, `{"plaintext":${deepArray.slice(0, 300_000)}}`, huge, bigBatch]) {
      const r = await rawPost(b.transitPort, `/v1/${MOUNT}/encrypt/app`, body);
      assert.ok([400, 413].includes(r.status), `status ${r.status}: ${r.body.slice(0, 200)}`);
      assert.ok(Array.isArray(JSON.parse(r.body).errors));
    }
    const over = await rawPost(b.transitPort, `/v1/${MOUNT}/encrypt/app`, huge);
    assert.equal(over.status, 413);
    assert.match(JSON.parse(over.body).errors[0], /request body is larger than the limit of 1048576 bytes/);
    assert.ok(b.proc.alive);
  });

  it('garbage on the raw socket is answered or dropped; the listener keeps serving', async () => {
    for (const garbage of ['\x00\x01\x02\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', 'POST /v1/x HTTP/1.1\r\nContent-Length: -5\r\n\r\n', 'LIST /v1/kv-transit/keys HTTP/1.1\r\nHost: x\r\n\r\n']) {
      const answer = await new Promise<string>((resolve) => {
        const s = net.connect(b.transitPort, '127.0.0.1', () => s.end(garbage));
        let got = '';
        s.on('data', (d) => (got += String(d)));
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(got));
      });
      assert.ok(answer === '' || /^HTTP\/1\.1 4\d\d /.test(answer), answer);
    }
    assert.equal((await call(b, 'POST', `/v1/${MOUNT}/decrypt/app`, { ciphertext: good })).body.data.plaintext, b64('fuzz-seed'));
  });

  it('per-tenant rate limit: 429 "rate limit quota exceeded" for the limited tenant only', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => call(b, 'POST', `/v1/${MOUNT}/encrypt/app`, { plaintext: b64('x') }, TOKENS.limited)));
    const limited = results.filter((r) => r.status === 429);
    assert.ok(limited.length >= 10, `expected most of 20 requests over a burst of 5 to be refused, got ${limited.length}`);
    for (const r of limited) assert.deepEqual(r.body, { errors: ['rate limit quota exceeded'] });
    for (const r of results.filter((x) => x.status !== 429)) assert.equal(r.status, 200);
    assert.equal((await call(b, 'POST', `/v1/${MOUNT}/encrypt/app`, { plaintext: b64('x') })).status, 200, 'other tenants are not limited');
  });

  it('an admin cache invalidation (no Redis) drops the data key: the next encrypt makes a new one', async () => {
    const path = `/v1/${MOUNT}/encrypt/app`;
    const envelopeOf = async (plaintext: string): Promise<string> => parseCiphertext((await call(b, 'POST', path, { plaintext: b64(plaintext) })).body.data.ciphertext).envelope.toString('base64');
    const first = await envelopeOf('x');
    assert.equal(await envelopeOf('y'), first, 'the same data key while it is fresh');
    const r = await fetch(`http://127.0.0.1:${b.ports.admin}/v1/admin/cache/invalidate`, {
      method: 'POST', headers: { authorization: `Bearer ${b.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ keyring: 'default' }),
    });
    assert.equal(r.status, 200);
    assert.notEqual(await envelopeOf('z'), first);
  });

  it('SIGHUP reloads identities: a new token works, a removed one is refused', async () => {
    const path = `/v1/${MOUNT}/encrypt/app`;
    assert.equal((await call(b, 'POST', path, { plaintext: b64('x') }, TOKENS.reloaded)).status, 403);
    const cfg = await fs.readFile(b.configFile, 'utf8');
    const next = cfg
      .replace(`    - { tokenSha256: "${sha(TOKENS.app)}", tenant: dev, keys: [app], operations: [encrypt, decrypt] }\n`, '')
      .concat(`    - { tokenSha256: "${sha(TOKENS.reloaded)}", tenant: dev, keys: [app], operations: [encrypt] }\n`);
    assert.notEqual(next, cfg);
    await fs.writeFile(b.configFile, next);
    b.proc.child.kill('SIGHUP');
    await waitFor('new token accepted', async () => (await call(b, 'POST', path, { plaintext: b64('x') }, TOKENS.reloaded)).status === 200);
    assert.equal((await call(b, 'POST', path, { plaintext: b64('x') }, TOKENS.app)).status, 403);
    // A broken config on SIGHUP keeps the running one, and says so.
    await fs.writeFile(b.configFile, `${next}\nnot: [valid`);
    b.proc.child.kill('SIGHUP');
    await waitFor('reload failure logged', async () => (await b.proc.logs()).includes('SIGHUP: config reload failed'));
    assert.equal((await call(b, 'POST', path, { plaintext: b64('x') }, TOKENS.reloaded)).status, 200);
    assert.ok(b.proc.alive);
  });
});

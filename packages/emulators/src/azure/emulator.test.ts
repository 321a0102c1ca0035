/**
 * Wire-level tests of the Key Vault emulator with plain node:https, so that what is asserted is the
 * protocol itself (challenge, api%2Dversion, kid host, error bodies), not what an SDK makes of it.
 * The SDK round trips are tested in packages/provider-azure-keyvault.
 */
import assert from 'node:assert/strict';
import { constants, publicEncrypt, createPublicKey, randomBytes } from 'node:crypto';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { startAzureKeyVaultEmulator, type AzureKeyVaultEmulator } from './emulator';

interface Jwk {
  kid: string;
  kty: string;
  n?: string;
  e?: string;
  d?: string;
  k?: string;
}

/** The union of the response bodies the tests look at. */
interface Body {
  error?: { code: string; message: string; innererror?: { code: string } };
  key?: Jwk;
  attributes?: { enabled: boolean };
  kid?: string;
  value?: string;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Body;
}

interface CallOptions {
  /** Bearer token; null sends no Authorization header. */
  token?: string | null;
  host?: string;
  query?: string;
  signal?: AbortSignal;
}

let emu: AzureKeyVaultEmulator;
// Keep-alive, like the SDK: connections stay open until the emulator drops them at close. (Connections
// that end with a FIN through TcpFront's piping can leave a handle that hangs node 20 at exit; see report.)
let agent: https.Agent;

function call(method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<Reply> {
  const text = body === undefined ? '' : JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) };
  const token = o.token === undefined ? 'test-token' : o.token;
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  if (o.host) headers['host'] = o.host;
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: emu.port, method, path: `${path}${o.query ?? '?api%2Dversion=2025-07-01'}`, headers, agent, signal: o.signal },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: raw ? (JSON.parse(raw) as Body) : {} });
        });
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

const b64u = (b: Buffer): string => b.toString('base64url');

async function wrap(name: string, version: string, alg: string, value: Buffer): Promise<Reply> {
  return call('POST', `/keys/${name}/${version}/wrapkey`, { alg, value: b64u(value) });
}
async function unwrap(name: string, version: string, alg: string, value: Buffer): Promise<Reply> {
  return call('POST', `/keys/${name}/${version}/unwrapkey`, { alg, value: b64u(value) });
}

describe('Azure Key Vault emulator (wire)', () => {
  before(async () => {
    emu = await startAzureKeyVaultEmulator();
    agent = new https.Agent({ keepAlive: true, ca: emu.caPem });
  });
  after(async () => {
    await emu.close();
    agent.destroy();
  });

  it('answers a token-less request with the 401 challenge and does not act on it', async () => {
    const r = await call('POST', '/keys/challenged/create', { kty: 'RSA' }, { token: null });
    assert.equal(r.status, 401);
    assert.equal(
      r.headers['www-authenticate'],
      `Bearer authorization="https://login.microsoftonline.com/${emu.tenantId}", resource="https://vault.azure.net"`,
    );
    assert.equal((await call('GET', '/keys/challenged/')).status, 404, 'the challenged create must not have created the key');
  });

  it('parses api%2Dversion with a URL parser and refuses a request without api-version', async () => {
    assert.equal((await call('POST', '/keys/apiv/create', { kty: 'RSA' }, { query: '?api%2Dversion=2025-07-01' })).status, 200);
    assert.equal((await call('GET', '/keys/apiv/', undefined, { query: '?api-version=7.4' })).status, 200);
    const r = await call('GET', '/keys/apiv/', undefined, { query: '' });
    assert.equal(r.status, 400);
    assert.equal(r.json.error?.code, 'BadParameter');
  });

  it('echoes the Host header in kid', async () => {
    const host = `myvault.vault.azure.net:${emu.port}`;
    const r = await call('POST', '/keys/hosted/create', { kty: 'RSA' }, { host });
    assert.equal(r.status, 200);
    assert.match(r.json.key?.kid ?? '', new RegExp(`^https://myvault\\.vault\\.azure\\.net:${emu.port}/keys/hosted/[0-9a-f]{32}$`));
  });

  it('RSA-OAEP-256 is real OAEP with SHA-256 under the key in the bundle', async () => {
    const created = await call('POST', '/keys/rsa1/create', { kty: 'RSA', key_size: 3072 });
    assert.equal(created.status, 200);
    const jwk = created.json.key!;
    assert.equal(jwk.kty, 'RSA');
    assert.equal(Buffer.from(jwk.n ?? '', 'base64url').length, 384);
    assert.equal(jwk.d, undefined, 'private parts never leave the vault');
    const version = String(jwk.kid).split('/').pop() ?? '';
    // Wrap locally with the published public key: the vault must unwrap it.
    const pub = createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' });
    const secret = randomBytes(32);
    const local = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret);
    const u = await unwrap('rsa1', version, 'RSA-OAEP-256', local);
    assert.equal(u.status, 200);
    assert.deepEqual(Buffer.from(u.json.value ?? '', 'base64url'), secret);
    assert.equal(u.json.kid, jwk.kid);
    // And its own wrap round-trips; a flipped bit is a 400 BadParameter.
    const w = await wrap('rsa1', version, 'RSA-OAEP-256', secret);
    const blob = Buffer.from(w.json.value ?? '', 'base64url');
    assert.equal(blob.length, 384);
    assert.deepEqual(Buffer.from((await unwrap('rsa1', version, 'RSA-OAEP-256', blob)).json.value ?? '', 'base64url'), secret);
    blob[10] = (blob[10] ?? 0) ^ 1;
    const bad = await unwrap('rsa1', version, 'RSA-OAEP-256', blob);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error?.code, 'BadParameter');
  });

  it('A256KW is RFC 3394 key wrap: 8 bytes of overhead, integrity-checked', async () => {
    const { version } = await emu.createKey('oct1', 'oct-HSM');
    const secret = randomBytes(64);
    const w = await wrap('oct1', version, 'A256KW', secret);
    assert.equal(w.status, 200);
    const blob = Buffer.from(w.json.value ?? '', 'base64url');
    assert.equal(blob.length, 72);
    assert.deepEqual(Buffer.from((await unwrap('oct1', version, 'A256KW', blob)).json.value ?? '', 'base64url'), secret);
    blob[30] = (blob[30] ?? 0) ^ 0x40;
    assert.equal((await unwrap('oct1', version, 'A256KW', blob)).status, 400);
    assert.equal((await unwrap('oct1', version, 'A256KW', blob.subarray(0, 8))).status, 400);
    assert.equal((await wrap('oct1', version, 'A256KW', randomBytes(33))).status, 400, 'RFC 3394 needs whole 64-bit blocks');
    assert.equal((await wrap('oct1', version, 'RSA-OAEP-256', secret)).status, 400, 'wrong algorithm for the key type');
    const got = await call('GET', `/keys/oct1/${version}`);
    assert.equal(got.json.key?.kty, 'oct-HSM');
    assert.equal(got.json.key?.k, undefined, 'symmetric key material never leaves the vault');
  });

  it('rotate adds a 32-hex version; latest moves, old versions stay readable and usable', async () => {
    const first = await emu.createKey('rot', 'RSA');
    const old = await wrap('rot', first.version, 'RSA-OAEP-256', Buffer.alloc(32, 9));
    const r = await call('POST', '/keys/rot/rotate');
    assert.equal(r.status, 200);
    const v2 = String(r.json.key?.kid).split('/').pop() ?? '';
    assert.match(v2, /^[0-9a-f]{32}$/);
    assert.notEqual(v2, first.version);
    assert.equal((await call('GET', '/keys/rot/')).json.key?.kid, r.json.key?.kid);
    assert.equal((await call('GET', `/keys/rot/${first.version}`)).json.key?.kid, first.kid);
    const u = await unwrap('rot', first.version, 'RSA-OAEP-256', Buffer.from(old.json.value ?? '', 'base64url'));
    assert.deepEqual(Buffer.from(u.json.value ?? '', 'base64url'), Buffer.alloc(32, 9));
    // A blob from the old version does not unwrap under the new one.
    assert.equal((await unwrap('rot', v2, 'RSA-OAEP-256', Buffer.from(old.json.value ?? '', 'base64url'))).status, 400);
  });

  it('a disabled key refuses crypto with 403 Forbidden / KeyDisabled but can still be read', async () => {
    const { version } = await emu.createKey('dis', 'RSA');
    const p = await call('PATCH', `/keys/dis/${version}`, { attributes: { enabled: false } });
    assert.equal(p.status, 200);
    assert.equal(p.json.attributes?.enabled, false);
    const w = await wrap('dis', version, 'RSA-OAEP-256', Buffer.alloc(32));
    assert.equal(w.status, 403);
    assert.equal(w.json.error?.code, 'Forbidden');
    assert.equal(w.json.error?.innererror?.code, 'KeyDisabled');
    assert.equal((await call('GET', '/keys/dis/')).json.attributes?.enabled, false);
    await emu.enableKey('dis');
    assert.equal((await wrap('dis', version, 'RSA-OAEP-256', Buffer.alloc(32))).status, 200);
  });

  it('reports unknown keys and versions as 404 KeyNotFound and bad input as 400 BadParameter', async () => {
    const missing = await call('GET', '/keys/nope/');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error?.code, 'KeyNotFound');
    await emu.createKey('known', 'RSA');
    assert.equal((await wrap('known', '0'.repeat(32), 'RSA-OAEP-256', Buffer.alloc(32))).json.error?.code, 'KeyNotFound');
    for (const body of [{ kty: 'RSA', key_size: 1024 }, { kty: 'EC' }, { kty: 'oct-HSM', key_size: 128 }]) {
      const r = await call('POST', '/keys/badsize/create', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.error?.code, 'BadParameter');
    }
  });

  it('answers a rejected token with 401 and a fresh challenge', async () => {
    emu.rejectToken('stale-token');
    const r = await call('GET', '/keys/known/', undefined, { token: 'stale-token' });
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /error="invalid_token"/);
    assert.equal((await call('GET', '/keys/known/')).status, 200, 'other tokens still work');
  });

  describe('faults', () => {
    it('throttle is 429 Throttled with Retry-After: 1, only for the named key', async () => {
      await emu.createKey('hot', 'RSA');
      emu.faults.add({ kind: 'throttle', key: 'hot', count: 1 });
      assert.equal((await call('GET', '/keys/known/')).status, 200);
      const r = await call('GET', '/keys/hot/');
      assert.equal(r.status, 429);
      assert.equal(r.headers['retry-after'], '1');
      assert.equal(r.json.error?.code, 'Throttled');
      assert.equal((await call('GET', '/keys/hot/')).status, 200, 'a counted rule is used up');
    });

    it('error is a 503', async () => {
      emu.faults.add({ kind: 'error', count: 1 });
      assert.equal((await call('GET', '/keys/known/')).status, 503);
    });

    it('corrupt flips the returned key material', async () => {
      const { version } = await emu.createKey('cor', 'oct-HSM');
      const secret = randomBytes(32);
      const blob = Buffer.from((await wrap('cor', version, 'A256KW', secret)).json.value ?? '', 'base64url');
      emu.faults.add({ kind: 'corrupt', key: 'cor', count: 1 });
      const got = Buffer.from((await unwrap('cor', version, 'A256KW', blob)).json.value ?? '', 'base64url');
      assert.notDeepEqual(got, secret);
      assert.deepEqual(got.subarray(0, 31), secret.subarray(0, 31));
    });

    it('a global outage resets connections; they work again when cleared', async () => {
      emu.faults.add({ kind: 'outage' });
      emu.onFaultsChanged();
      await assert.rejects(call('GET', '/keys/known/'), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET' || e.code === 'EPIPE');
      emu.faults.clear();
      assert.equal((await call('GET', '/keys/known/')).status, 200);
    });

    it('a per-key outage resets only that key\'s calls', async () => {
      emu.faults.add({ kind: 'outage', key: 'hot' });
      try {
        await assert.rejects(call('GET', '/keys/hot/'), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET');
        assert.equal((await call('GET', '/keys/known/')).status, 200);
      } finally {
        emu.faults.clear();
      }
    });

    it('latency holds the answer until the client gives up', async () => {
      emu.faults.add({ kind: 'latency', ms: 60_000 });
      try {
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 50);
        await assert.rejects(call('GET', '/keys/known/', undefined, { signal: ac.signal }), { name: 'AbortError' });
      } finally {
        emu.faults.clear();
      }
      assert.ok(emu.faults.callCount('getKey') > 0);
    });
  });
});

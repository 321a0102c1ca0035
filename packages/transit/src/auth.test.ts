/** Token identification: proven tokens are remembered, and forgotten when the identities are replaced (SIGHUP). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { Authenticator } from './auth';

const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
const req = (token: string): IncomingMessage => ({ headers: { 'x-vault-token': token }, socket: {} }) as unknown as IncomingMessage;

test('a token removed by replace() is refused at once, even after it was remembered', () => {
  const auth = new Authenticator([{ tokenSha256: sha('t1'), tenant: 'dev', keys: ['*'], operations: ['encrypt'] }]);
  assert.equal(auth.identify(req('t1'))?.tenant, 'dev');
  assert.equal(auth.identify(req('t1'))?.tenant, 'dev'); // from the proven-token cache
  assert.equal(auth.identify(req('t2')), undefined);
  auth.replace([{ tokenSha256: sha('t2'), tenant: 'b', keys: ['*'], operations: ['encrypt'] }]);
  assert.equal(auth.identify(req('t1')), undefined);
  assert.equal(auth.identify(req('t2'))?.tenant, 'b');
});

/**
 * The command lines as an operator meets them: linked bins, --version, one-line usage errors, and fatal
 * problems that end the process with a non-zero code and a message naming the flag or config path.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, tempDir } from '@kekbroker/testkit';
import { REPO, allocateBrokerPorts, devBrokerConfig } from '../helpers/processes';

const BIN = path.join(REPO, 'node_modules/.bin');
const VERSION = (JSON.parse(readFileSync(path.join(REPO, 'services/broker/package.json'), 'utf8')) as { version: string }).version;

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** Run a command to its end; a process that has not exited after `timeoutMs` fails the test. */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const t = setTimeout(() => {
      c.kill('SIGKILL');
      reject(new Error(`${path.basename(cmd)} ${args.join(' ')} still running after ${opts.timeoutMs ?? 20_000} ms (a fatal error must exit)\n${out}${err}`));
    }, opts.timeoutMs ?? 20_000);
    c.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

const broker = path.join(BIN, 'kekbroker-broker');
const shim = path.join(BIN, 'kekbroker-kms-shim');
const noStack = (r: Ran): void => assert.doesNotMatch(r.out + r.err, /^\s+at .+\(.+:\d+:\d+\)$/m, 'no stack trace');

describe('command lines', { timeout: 180_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await tempDir();
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('npm links both bins; --help and --version work', async () => {
    for (const bin of [broker, shim]) {
      const v = await run(bin, ['--version']);
      assert.equal(v.code, 0, v.err);
      assert.equal(v.out.trim(), VERSION);
      const h = await run(bin, ['--help']);
      assert.equal(h.code, 0, h.err);
      assert.match(h.out, /Usage/);
    }
  });

  it('an unknown flag is a one-line usage error with exit code 2, no stack trace', async () => {
    for (const bin of [broker, shim]) {
      const r = await run(bin, ['--bogus']);
      assert.equal(r.code, 2);
      assert.match(r.err, /unknown option '--bogus'/i);
      assert.match(r.err, /--help/);
      noStack(r);
    }
    const launcher = await run(process.execPath, [path.join(REPO, 'deploy/local/start.js'), '--bogus']);
    assert.equal(launcher.code, 2);
    assert.match(launcher.err, /--bogus/);
    noStack(launcher);
  });

  it('broker: a missing admin.tokenFile ends the process, naming the config path', async () => {
    const ports = await allocateBrokerPorts();
    const file = path.join(dir, 'no-token.yaml');
    await fs.writeFile(file, devBrokerConfig(ports).replace('./admin.token', './missing.token'));
    const r = await run(broker, ['--config', file]);
    assert.equal(r.code, 1);
    assert.match(r.err, /\/admin\/tokenFile: cannot read .*missing\.token \(ENOENT\); create it/);
    noStack(r);
    // Nothing was bound: the gRPC port is free again.
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer().once('error', reject).listen(ports.grpc, '127.0.0.1', () => s.close(() => resolve()));
    });
  });

  it('broker check: referenced files, their modes and environment variables', async () => {
    await fs.writeFile(path.join(dir, 'admin.token'), 'secret\n', { mode: 0o644 });
    const ports = await allocateBrokerPorts();
    const file = path.join(dir, 'refs.yaml');
    await fs.writeFile(file, devBrokerConfig(ports).replace('providers:\n', `providers:
  aws: { type: aws-kms, region: us-east-1, keyId: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", credentials: { source: env, accessKeyIdEnv: KEKBROKER_TEST_UNSET_AKID, secretAccessKeyEnv: KEKBROKER_TEST_SET_SECRET } }
`));
    const r = await run(broker, ['check', '--config', file], { env: { KEKBROKER_TEST_SET_SECRET: 'x' } });
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.err, /\/providers\/aws\/credentials\/accessKeyIdEnv: environment variable KEKBROKER_TEST_UNSET_AKID is not set/);
    assert.doesNotMatch(r.err, /KEKBROKER_TEST_SET_SECRET/);
    assert.match(r.err, /\/admin\/tokenFile: .*admin\.token holds a secret but other users can read it \(mode 0644\); run: chmod 0600/);
    noStack(r);
    const ok = await run(broker, ['check', '--config', file], { env: { KEKBROKER_TEST_SET_SECRET: 'x', KEKBROKER_TEST_UNSET_AKID: 'y' } });
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /OK \(2 keyring\(s\), 2 provider\(s\)/);
  });

  it('broker: a listen port in use ends the process at once, naming the config path', async () => {
    const ports = await allocateBrokerPorts();
    const file = path.join(dir, 'busy.yaml');
    await fs.writeFile(path.join(dir, 'admin.token'), 'secret\n', { mode: 0o600 });
    await fs.writeFile(file, devBrokerConfig(ports));
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(ports.http, '127.0.0.1', resolve));
    try {
      const r = await run(broker, ['--config', file]);
      assert.equal(r.code, 1);
      assert.match(r.err, new RegExp(`/http/listen: cannot bind 127\\.0\\.0\\.1:${ports.http} \\(in use`));
      noStack(r);
    } finally {
      holder.close();
    }
  });

  it('shim: refuses a budget at or above the apiserver timeout and plaintext to a remote broker', async () => {
    const budget = await run(shim, ['--insecure-dev-tenant', 'dev', '--apiserver-timeout-ms', '2000', '--budget-ms', '2500']);
    assert.equal(budget.code, 2);
    assert.match(budget.err, /--budget-ms 2500 must be below --apiserver-timeout-ms 2000/);
    const remote = await run(shim, ['--insecure-dev-tenant', 'dev', '--broker', '10.1.2.3:7443']);
    assert.equal(remote.code, 2);
    assert.match(remote.err, /--insecure-dev-tenant .* only talks to loopback brokers, not 10\.1\.2\.3:7443/);
    noStack(budget);
    noStack(remote);
  });

  it('shim: a socket in use, or one it cannot create, ends the process naming --socket', async () => {
    const socket = path.join(dir, 'busy.sock');
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(socket, resolve));
    try {
      const r = await run(shim, ['--insecure-dev-tenant', 'dev', '--broker', `127.0.0.1:${await freePort()}`, '--socket', socket]);
      assert.equal(r.code, 1);
      assert.match(r.err, /--socket .*busy\.sock is in use by a running process/);
      noStack(r);
    } finally {
      holder.close();
    }
    const notDir = path.join(dir, 'a-file');
    await fs.writeFile(notDir, '');
    const r = await run(shim, ['--insecure-dev-tenant', 'dev', '--socket', path.join(notDir, 'kms.sock')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /--socket: cannot create the folder of/);
    noStack(r);
  });

  it('the committed bin launcher says how to build when dist is missing', async () => {
    const fake = path.join(dir, 'pkg');
    await fs.mkdir(path.join(fake, 'bin'), { recursive: true });
    await fs.copyFile(path.join(REPO, 'services/kms-shim/bin/kekbroker-kms-shim.js'), path.join(fake, 'bin/x.js'));
    const r = await run(process.execPath, [path.join(fake, 'bin/x.js')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /not built yet .* run `npm run build`/);
  });
});

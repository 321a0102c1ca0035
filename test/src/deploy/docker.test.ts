/**
 * deploy/docker/Dockerfile without Docker: what it COPYs exists, its stages hang together, the final
 * stages run as non-root on Node 24 with no HEALTHCHECK; and each entry point runs from a pruned
 * `npm ci --omit=dev --workspace=<service>` install, as in the image (the broker answers /readyz, the
 * shim opens its socket).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@kekbroker/testkit';
import { REPO, allocateBrokerPorts, devBrokerConfig, waitFor } from '../helpers/processes';

const DOCKERFILE = path.join(REPO, 'deploy/docker/Dockerfile');

interface Stage {
  name: string;
  from: string;
  lines: string[];
}

function stages(text: string): Stage[] {
  const out: Stage[] = [];
  const joined = text.replace(/\\\n/g, ' ');
  for (const line of joined.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
    const m = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (m) out.push({ from: m[1] as string, name: m[2] ?? '', lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

describe('deploy/docker/Dockerfile', { timeout: 600_000 }, () => {
  let text: string;
  let dir: string;
  before(async () => {
    text = await fs.readFile(DOCKERFILE, 'utf8');
    dir = await tempDir();
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('copies only files that exist, from stages that exist; final stages are non-root Node 24 without HEALTHCHECK', async () => {
    const all = stages(text);
    const names = new Set(all.map((s) => s.name));
    const nodeImage = /ARG NODE_IMAGE=(\S+)/.exec(text)?.[1] ?? '';
    assert.match(nodeImage, /^node:24\.\d+\.\d+-[a-z]+-slim$/, 'a pinned Node 24 slim base');
    for (const s of all) {
      for (const l of s.lines) {
        const copy = /^COPY\s+(--from=(\S+)\s+)?(.+)$/.exec(l);
        if (!copy) continue;
        const parts = (copy[3] as string).split(/\s+/);
        const sources = parts.slice(0, -1);
        if (copy[2]) {
          assert.ok(names.has(copy[2]), `COPY --from=${copy[2]}: no such stage`);
          continue;
        }
        for (const src of sources) await fs.access(path.join(REPO, src)).catch(() => assert.fail(`COPY ${src}: not in the repository`));
      }
    }
    assert.doesNotMatch(text, /^HEALTHCHECK/m);
    for (const target of ['broker', 'kms-shim']) {
      const s = all.find((x) => x.name === target);
      assert.ok(s, `target ${target}`);
      const inherited = all.find((x) => x.name === s.from);
      const user = [...(inherited?.lines ?? []), ...s.lines].filter((l) => l.startsWith('USER')).at(-1);
      assert.match(user ?? '', /^USER 65532:65532$/, `${target}: non-root`);
      const entry = JSON.parse(s.lines.find((l) => l.startsWith('ENTRYPOINT'))?.slice('ENTRYPOINT'.length) ?? '[]') as string[];
      assert.equal(entry[0], 'node');
      await fs.access(path.join(REPO, entry[1] as string));
      assert.ok(s.lines.some((l) => l.includes('org.opencontainers.image.title')), `${target}: OCI labels`);
    }
    const ignore = await fs.readFile(path.join(REPO, '.dockerignore'), 'utf8');
    assert.match(ignore, /\*\*\/node_modules/);
  });

  /** The repository as the build stage leaves it: manifests, lock file, built dist, bins. */
  async function builtTree(): Promise<string> {
    const root = path.join(dir, 'app');
    await fs.mkdir(root, { recursive: true });
    for (const f of ['package.json', 'package-lock.json']) await fs.copyFile(path.join(REPO, f), path.join(root, f));
    await fs.mkdir(path.join(root, 'test'));
    await fs.copyFile(path.join(REPO, 'test/package.json'), path.join(root, 'test/package.json'));
    for (const group of ['packages', 'services']) {
      for (const name of await fs.readdir(path.join(REPO, group))) {
        const src = path.join(REPO, group, name);
        const dst = path.join(root, group, name);
        await fs.mkdir(dst, { recursive: true });
        await fs.copyFile(path.join(src, 'package.json'), path.join(dst, 'package.json'));
        for (const sub of ['dist', 'bin']) await fs.cp(path.join(src, sub), path.join(dst, sub), { recursive: true }).catch(() => undefined);
      }
    }
    return root;
  }

  async function npmCiOmitDev(root: string, workspace: string): Promise<void> {
    await fs.rm(path.join(root, 'node_modules'), { recursive: true, force: true });
    const r = spawnSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline', `--workspace=${workspace}`], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, `npm ci --omit=dev --workspace=${workspace}:\n${r.stdout}${r.stderr}`);
  }

  it('the broker and shim entry points run from a pruned --omit=dev install', async () => {
    const root = await builtTree();

    await npmCiOmitDev(root, '@kekbroker/broker');
    await assert.rejects(fs.access(path.join(root, 'node_modules/typescript')), 'dev dependencies are pruned');
    const v = spawnSync(process.execPath, ['services/broker/bin/kekbroker-broker.js', '--version'], { cwd: root, encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    const ports = await allocateBrokerPorts();
    await fs.writeFile(path.join(dir, 'broker.yaml'), devBrokerConfig(ports));
    await fs.writeFile(path.join(dir, 'admin.token'), 'docker-test-token\n', { mode: 0o600 });
    const broker = spawn(process.execPath, ['services/broker/bin/kekbroker-broker.js', '--config', path.join(dir, 'broker.yaml')], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    broker.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await waitFor('the pruned broker to be ready', async () => {
        if (broker.exitCode !== null) throw new Error(`broker exited ${broker.exitCode}: ${stderr}`);
        return (await fetch(`http://127.0.0.1:${ports.http}/readyz`).catch(() => undefined))?.status === 200;
      }, 30_000);
    } finally {
      broker.kill();
    }

    await npmCiOmitDev(root, '@kekbroker/kms-shim');
    const socket = path.join(dir, 'kms.sock');
    const shim = spawn(process.execPath, ['services/kms-shim/bin/kekbroker-kms-shim.js', '--socket', socket, '--insecure-dev-tenant', 'dev', '--broker', `127.0.0.1:${ports.grpc}`], { cwd: root, stdio: 'ignore' });
    try {
      await waitFor('the pruned shim to listen', async () => {
        if (shim.exitCode !== null) throw new Error(`shim exited ${shim.exitCode}`);
        return new Promise<boolean>((resolve) => net.connect(socket).once('connect', function (this: net.Socket) {
          this.destroy();
          resolve(true);
        }).once('error', () => resolve(false)));
      }, 30_000);
    } finally {
      shim.kill();
    }
  });
});

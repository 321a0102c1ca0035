/**
 * Real redis-server processes for tests, on free loopback ports, killed by the test. Standalone servers and
 * a 3-master cluster (redis-server --cluster-enabled + redis-cli --cluster create). Needs redis-server and
 * redis-cli on PATH (scripts/ensure-redis.sh installs them; .ci/run calls it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, tempDir } from './net';

export interface RedisServer {
  port: number;
  /** "127.0.0.1:PORT" */
  address: string;
  proc: ChildProcess;
  dir: string;
  /** SIGKILL/SIGSTOP/SIGCONT etc. */
  signal(sig: NodeJS.Signals): void;
  /** Start again on the same port (after a kill), empty. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** Run redis-cli against this server; returns stdout. */
  cli(...args: string[]): string;
}

export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(500);
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

async function waitPing(port: number, proc: ChildProcess): Promise<void> {
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    if (proc.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${proc.exitCode}`);
    if (await ping(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server on ${port} did not answer PING`);
}

export async function startRedis(opts: { port?: number; args?: string[] } = {}): Promise<RedisServer> {
  const port = opts.port ?? (await freePort());
  const dir = await tempDir('kekbroker-redis-');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', path.join(dir, 'redis.log'), ...(opts.args ?? [])];
  const launch = async (): Promise<ChildProcess> => {
    const p = spawn('redis-server', args, { stdio: 'ignore' });
    await waitPing(port, p);
    return p;
  };
  const server: RedisServer = {
    port,
    address: `127.0.0.1:${port}`,
    proc: await launch(),
    dir,
    signal(sig) {
      if (server.proc.exitCode === null) server.proc.kill(sig);
    },
    async restart() {
      server.proc = await launch();
    },
    async stop() {
      const p = server.proc;
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGCONT');
        p.kill('SIGKILL');
        await new Promise((r) => p.once('exit', r));
      }
    },
    cli(...a) {
      const r = spawnSync('redis-cli', ['-p', String(port), ...a], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`redis-cli ${a.join(' ')}: ${r.stderr}`);
      return r.stdout;
    },
  };
  return server;
}

/** A cluster of `masters` masters (no replicas), slots assigned; resolves once `cluster_state:ok`. */
export async function startRedisCluster(masters = 3): Promise<{ nodes: RedisServer[]; addresses: string[]; stop(): Promise<void> }> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < masters; i++) {
    const dir = await tempDir('kekbroker-rc-');
    nodes.push(await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000'] }));
  }
  const addresses = nodes.map((n) => n.address);
  const r = spawnSync('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stdout}${r.stderr}`);
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    if (nodes.every((n) => n.cli('cluster', 'info').includes('cluster_state:ok'))) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  return { nodes, addresses, stop: async () => void (await Promise.all(nodes.map((n) => n.stop()))) };
}

/** Every key and value (as raw bytes, and escaped) in a standalone server, for "no key material in Redis" scans. */
export async function dumpRedis(server: RedisServer): Promise<Buffer> {
  const keys = server.cli('--scan').split('\n').filter(Boolean);
  // Two redis-cli processes in all (commands on stdin), not three per key.
  const pipe = (args: string[], commands: string[]): Buffer =>
    spawnSync('redis-cli', ['-p', String(server.port), ...args], { input: commands.join('\n') + '\n', maxBuffer: 1 << 30 }).stdout;
  const types = pipe([], keys.map((k) => `TYPE ${k}`)).toString().split('\n').filter(Boolean);
  const reads = keys.map((k, i) => (types[i] === 'hash' ? `HGETALL ${k}` : types[i] === 'set' ? `SMEMBERS ${k}` : `GET ${k}`));
  const out = Buffer.concat([Buffer.from(keys.join('\n')), pipe(['--raw'], reads), pipe(['--no-raw'], reads)]);
  await fs.writeFile(path.join(server.dir, 'dump.bin'), out);
  return out;
}

/**
 * Real redis-server processes for tests, on free loopback ports, killed by the test. Standalone servers, a
 * master + replica watched by 3 redis-sentinel processes, and a 3-master cluster (redis-server
 * --cluster-enabled + redis-cli --cluster create). Needs redis-server, redis-sentinel and redis-cli on PATH
 * (scripts/ensure-redis.sh installs them; test/run.js and .ci/run call it).
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

export async function startRedis(opts: { port?: number; args?: string[]; sentinelConfig?: string } = {}): Promise<RedisServer> {
  const port = opts.port ?? (await freePort());
  const dir = await tempDir('kekbroker-redis-');
  let args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', path.join(dir, 'redis.log'), ...(opts.args ?? [])];
  if (opts.sentinelConfig !== undefined) {
    // redis-sentinel rewrites its config file (known replicas, sentinels, epochs): each gets its own.
    const conf = path.join(dir, 'sentinel.conf');
    await fs.writeFile(conf, opts.sentinelConfig);
    args = [conf, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--logfile', path.join(dir, 'sentinel.log')];
  }
  const launch = async (): Promise<ChildProcess> => {
    const p = spawn(opts.sentinelConfig !== undefined ? 'redis-sentinel' : 'redis-server', args, { stdio: 'ignore' });
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

const CLUSTER_BUS_OFFSET = 10_000;

/** A cluster of `masters` masters (no replicas), slots assigned; resolves once `cluster_state:ok`. */
export async function startRedisCluster(masters = 3): Promise<{ nodes: RedisServer[]; addresses: string[]; stop(): Promise<void> }> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < masters; i++) {
    const dir = await tempDir('kekbroker-rc-');
    // The cluster bus listens on port + 10000: that port must be free too, and below the ephemeral range
    // (an outgoing connection's local port there made a node exit at start, once in CI).
    const port = await freePort({ alsoFree: CLUSTER_BUS_OFFSET });
    nodes.push(await startRedis({ port, args: ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000'] }));
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

export interface RedisSentinelSet {
  /** The master at start (after a failover: see currentMaster). */
  master: RedisServer;
  replica: RedisServer;
  sentinels: RedisServer[];
  /** "127.0.0.1:PORT" of each sentinel: a broker's `redis.nodes` in sentinel mode. */
  sentinelAddresses: string[];
  name: string;
  /** The server the sentinels name as master now (asked of the first sentinel that answers). */
  currentMaster(): RedisServer | undefined;
  stop(): Promise<void>;
}

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if (ok()) return;
    } catch {
      // not yet
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * A master, one replica, and 3 redis-sentinel processes (quorum 2) watching them as `name`. Sentinels mark the
 * master down after `downAfterMs` without an answer and fail over to the replica. Resolves once the replica is
 * in sync and every sentinel knows the replica and the two other sentinels.
 */
export async function startRedisSentinel(opts: { name?: string; downAfterMs?: number } = {}): Promise<RedisSentinelSet> {
  const name = opts.name ?? 'kekbroker';
  const master = await startRedis();
  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
  await until('the replica in sync', () => replica.cli('info', 'replication').includes('master_link_status:up'), 15_000);
  const conf = [
    `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
    `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
    `sentinel failover-timeout ${name} 5000`,
    `sentinel parallel-syncs ${name} 1`,
    '',
  ].join('\n');
  const sentinels: RedisServer[] = [];
  for (let i = 0; i < 3; i++) sentinels.push(await startRedis({ sentinelConfig: conf }));
  await until('the sentinels to know the replica and each other', () => sentinels.every((s) => {
    const info = s.cli('sentinel', 'master', name);
    return /num-slaves\n1\n/.test(info) && /num-other-sentinels\n2\n/.test(info);
  }), 30_000);
  const servers = [master, replica];
  return {
    master, replica, sentinels, name,
    sentinelAddresses: sentinels.map((s) => s.address),
    currentMaster() {
      for (const s of sentinels) {
        try {
          const port = Number(s.cli('sentinel', 'get-master-addr-by-name', name).split('\n')[1]);
          return servers.find((x) => x.port === port);
        } catch {
          // this sentinel is down: ask the next one
        }
      }
      return undefined;
    },
    stop: async () => void (await Promise.all([...sentinels, replica, master].map((x) => x.stop()))),
  };
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

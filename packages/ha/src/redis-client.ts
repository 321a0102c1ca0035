/**
 * Redis connections for a broker replica, on ioredis: standalone, Sentinel or Cluster from config, TLS, ACL
 * user and password (from a file or an environment variable: never inline in the config or a log).
 *
 * A dead or hung Redis must never hold a request past its deadline (principle 2: Redis makes the fleet
 * faster, never more fragile). So the command connection has NO offline queue (a command while disconnected
 * fails at once), one retry at most, and a per-command timeout; on top, RedisHealth keeps the broker off Redis
 * for a short back-off after any failure (ended early by the next command that succeeds, e.g. the lease
 * renewal), so a SIGSTOPped Redis costs one timeout, not one per request.
 * The subscriber connection (invalidation, flight notifications) does queue: it re-subscribes by itself.
 */
import { promises as fs } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import Redis, { Cluster, type RedisOptions } from 'ioredis';

export interface RedisConfig {
  mode: 'standalone' | 'sentinel' | 'cluster';
  nodes: readonly string[];
  sentinelName?: string;
  username?: string;
  passwordFile?: string;
  passwordEnv?: string;
  db: number;
  keyPrefix: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string };
  commandTimeoutMs: number;
  connectTimeoutMs: number;
}

export type RedisClient = Redis | Cluster;

/** How long the broker stays off Redis after a failed or timed-out command. */
export const REDIS_BACKOFF_MS = 1000;

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

/** The ACL password, read once. Errors name the config path and the fix. */
export async function redisPassword(cfg: RedisConfig, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (cfg.passwordFile) {
    try {
      return (await fs.readFile(cfg.passwordFile, 'utf8')).trim();
    } catch (e) {
      throw new Error(`redis.passwordFile ${cfg.passwordFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)}); fix the path or its permissions`);
    }
  }
  if (cfg.passwordEnv) {
    const v = env[cfg.passwordEnv];
    if (v === undefined || v === '') throw new Error(`redis.passwordEnv: environment variable ${cfg.passwordEnv} is not set; export it or remove redis.passwordEnv`);
    return v;
  }
  return undefined;
}

async function tlsOptions(cfg: RedisConfig): Promise<ConnectionOptions | undefined> {
  if (!cfg.tls) return undefined;
  const read = async (f: string | undefined, what: string): Promise<Buffer | undefined> => {
    if (!f) return undefined;
    try {
      return await fs.readFile(f);
    } catch (e) {
      throw new Error(`redis.tls.${what} ${f}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  };
  return {
    ca: await read(cfg.tls.caFile, 'caFile'),
    cert: await read(cfg.tls.certFile, 'certFile'),
    key: await read(cfg.tls.keyFile, 'keyFile'),
    servername: cfg.tls.serverName,
  };
}

/**
 * One client per purpose. `forSubscriber` keeps an offline queue (subscriptions wait for the connection and
 * are restored after a reconnect); command clients have none.
 */
export async function createRedisClient(cfg: RedisConfig, forSubscriber = false): Promise<RedisClient> {
  const password = await redisPassword(cfg);
  const tls = await tlsOptions(cfg);
  const base: RedisOptions = {
    username: cfg.username,
    password,
    tls,
    connectTimeout: cfg.connectTimeoutMs,
    // A backstop only: RedisHealth.run enforces commandTimeoutMs, and tolerates a blocked event loop, which
    // ioredis' own timer does not (see there). At the same value this timer would fire first.
    commandTimeout: forSubscriber ? undefined : cfg.commandTimeoutMs * 2 + 1000,
    enableOfflineQueue: forSubscriber,
    maxRetriesPerRequest: forSubscriber ? null : 1,
    // Reconnect forever with a short, capped back-off: Redis coming back must be noticed quickly.
    retryStrategy: (times) => Math.min(100 * times, 2000),
    enableReadyCheck: true,
  };
  if (cfg.mode === 'cluster') {
    return new Cluster(cfg.nodes.map(hostPort), {
      redisOptions: base,
      enableOfflineQueue: forSubscriber,
      clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
      slotsRefreshTimeout: cfg.connectTimeoutMs,
      maxRedirections: 4,
      retryDelayOnFailover: 50,
      retryDelayOnClusterDown: 100,
    });
  }
  if (cfg.mode === 'sentinel') {
    return new Redis({
      ...base,
      db: cfg.db,
      sentinels: cfg.nodes.map(hostPort),
      name: cfg.sentinelName,
      sentinelUsername: cfg.username,
      sentinelPassword: password,
      enableTLSForSentinelMode: Boolean(tls),
      sentinelTLS: tls,
      sentinelRetryStrategy: (times) => Math.min(100 * times, 2000),
    });
  }
  const { host, port } = hostPort(cfg.nodes[0] as string);
  return new Redis({ ...base, host, port, db: cfg.db });
}

/**
 * Whether Redis is worth asking right now. A failure takes Redis out of the request path for
 * REDIS_BACKOFF_MS; the next command after that is the probe.
 */
export class RedisHealth {
  private downUntil = 0;
  lastError = '';
  failures = 0;
  /** Set by a redis-outage drill: every command fails at once, as if Redis were unreachable. */
  simulatedOutage = false;

  get up(): boolean {
    return Date.now() >= this.downUntil;
  }

  /** A command succeeded (any: the lease renewal, a sync): Redis is back, stop the back-off early. */
  succeeded(): void {
    this.downUntil = 0;
  }

  failed(e: unknown): void {
    this.failures++;
    this.lastError = e instanceof Error ? e.message : String(e);
    this.downUntil = Date.now() + REDIS_BACKOFF_MS;
  }

  /**
   * Run a Redis command within `ms` (this also covers cluster redirections).
   *
   * The timeout is declared only after the event loop has polled for I/O once more. When the loop was blocked
   * past `ms` (a busy CPU: a leader starting, a burst of cold unwraps), the timers phase runs before the poll
   * phase, so a plain timer fires while Redis' answer sits unread in the socket buffer, and the broker would
   * go off Redis for REDIS_BACKOFF_MS for nothing. setImmediate runs after the poll phase: an answer that has
   * arrived wins; a Redis that is really slow or hung still fails within `ms` plus one loop turn.
   */
  async run<T>(ms: number, fn: () => Promise<T>): Promise<T> {
    if (this.simulatedOutage) {
      const e = new Error('redis unreachable (simulated by a redis-outage drill)');
      this.failed(e);
      throw e;
    }
    let timer: NodeJS.Timeout | undefined;
    let immediate: NodeJS.Immediate | undefined;
    try {
      const out = await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            immediate = setImmediate(() => reject(new Error(`redis command timed out after ${ms} ms`)));
          }, ms);
        }),
      ]);
      this.succeeded();
      return out;
    } catch (e) {
      this.failed(e);
      throw e;
    } finally {
      clearTimeout(timer);
      clearImmediate(immediate);
    }
  }
}

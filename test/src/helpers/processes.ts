/**
 * Real processes for cross-process tests: a broker and a shim started from their built entry points,
 * logs captured to files (so a test can scan them for key material), stopped by SIGTERM or SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { freePort } from '@kekbroker/testkit';

export const REPO = path.resolve(__dirname, '../../..');
export const BROKER_MAIN = path.join(REPO, 'services/broker/dist/main.js');
export const SHIM_MAIN = path.join(REPO, 'services/kms-shim/dist/main.js');

/** Every log file written by any process in this test process, for the final plaintext scan. */
export const LOG_FILES: string[] = [];

export class Proc {
  private exited: Promise<number | null>;
  constructor(readonly child: ChildProcess, readonly logFile: string) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.alive) this.child.kill(signal);
    return this.exited;
  }
  /** stdout (the JSON log lines), then whatever the process wrote to stderr. */
  async logs(): Promise<string> {
    const read = (f: string) => fs.readFile(f, 'utf8').catch(() => '');
    return (await read(this.logFile)) + (await read(`${this.logFile}.stderr`));
  }
  /**
   * The first log line that matches, waiting for it: a line the process has written may still be in its
   * logger's buffer or in this process's pipe to the file when the answer it belongs to arrives.
   */
  async waitForLogLine(what: string, match: RegExp | ((line: string) => boolean), timeoutMs = 10_000): Promise<string> {
    const test = typeof match === 'function' ? match : (l: string) => match.test(l);
    return waitFor(`a log line: ${what}`, async () => (await this.logs()).split('\n').find(test), timeoutMs);
  }
}

export function startProcess(main: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = {}): Proc {
  // stdout and stderr go to separate files: one file for both would interleave their chunks, and a stderr
  // write landing inside a long JSON line splits it, so a test looking for that line misses it.
  const child = spawn(process.execPath, [main, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(createWriteStream(logFile, { flags: 'a' }));
  child.stderr?.pipe(createWriteStream(`${logFile}.stderr`, { flags: 'a' }));
  LOG_FILES.push(logFile, `${logFile}.stderr`);
  return new Proc(child, logFile);
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export interface BrokerPorts {
  grpc: number;
  http: number;
  admin: number;
}

export async function allocateBrokerPorts(): Promise<BrokerPorts> {
  return { grpc: await freePort(), http: await freePort(), admin: await freePort() };
}

export interface BrokerHandle {
  proc: Proc;
  ports: BrokerPorts;
  adminToken: string;
  configFile: string;
}

/** Write `config` (YAML text) into dir/broker.yaml and start a broker; resolves once /readyz is 200. */
export async function startBroker(dir: string, configYaml: string, ports: BrokerPorts, adminToken: string, name = 'broker'): Promise<BrokerHandle> {
  const configFile = path.join(dir, `${name}.yaml`);
  await fs.writeFile(configFile, configYaml);
  await fs.writeFile(path.join(dir, 'admin.token'), adminToken, { mode: 0o600 });
  const proc = startProcess(BROKER_MAIN, ['--config', configFile], path.join(dir, `${name}.log`));
  await waitFor(`${name} readiness`, async () => {
    if (!proc.alive) throw new Error(`${name} exited: ${await proc.logs()}`);
    const r = await fetch(`http://127.0.0.1:${ports.http}/readyz`).catch(() => undefined);
    return r?.status === 200;
  });
  return { proc, ports, adminToken, configFile };
}

export function devBrokerConfig(ports: BrokerPorts, extra = ''): string {
  return `grpc: { listen: "127.0.0.1:${ports.grpc}", insecureLoopback: true }
http: { listen: "127.0.0.1:${ports.http}" }
admin: { listen: "127.0.0.1:${ports.admin}", tokenFile: ./admin.token }
providers:
  local: { type: local, keystore: ./keystore.json }
keyrings:
  default: { providers: [local] }
  other: { providers: [local] }
tenants:
  dev: { keyrings: [default, other] }
  tenant-b: { keyrings: [default] }
${extra}`;
}

export async function startShim(dir: string, args: string[], name = 'shim'): Promise<{ proc: Proc; socket: string }> {
  const socket = path.join(dir, `${name}.sock`);
  const proc = startProcess(SHIM_MAIN, ['--socket', socket, ...args], path.join(dir, `${name}.log`));
  await waitFor(`${name} socket`, async () => {
    if (!proc.alive) throw new Error(`${name} exited: ${await proc.logs()}`);
    return fs.stat(socket).then(() => true, () => false);
  });
  return { proc, socket };
}

export async function adminPost(h: BrokerHandle, p: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`http://127.0.0.1:${h.ports.admin}${p}`, { method: 'POST', headers: { authorization: `Bearer ${h.adminToken}` } });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** SIGTERM the broker and start it again with the same config and ports: its caches start cold. */
export async function restartBroker(h: BrokerHandle): Promise<BrokerHandle> {
  await h.proc.kill();
  const dir = path.dirname(h.configFile);
  return startBroker(dir, await fs.readFile(h.configFile, 'utf8'), h.ports, h.adminToken, path.basename(h.configFile, '.yaml'));
}

/**
 * Running the real `kekctl` (services/kekctl/dist/main.js) against a broker's admin API, as an SRE would:
 * the address and token file come from its environment, never from a config file on this machine.
 */
import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO } from './processes';

export const KEKCTL = path.join(REPO, 'services/kekctl/dist/main.js');

export interface KekctlResult {
  code: number | null;
  out: string;
  err: string;
}

/** The environment that points kekctl at one admin endpoint. */
export function kekctlEnv(adminPort: number | undefined, tokenFile: string): NodeJS.ProcessEnv {
  return { ...process.env, KEKBROKER_ADMIN_ADDR: `127.0.0.1:${adminPort}`, KEKBROKER_ADMIN_TOKEN_FILE: tokenFile, KEKCTL_CONFIG: '' };
}

/** Blocking run: for tests whose servers all live in other processes. */
export function kekctlSync(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 30_000): KekctlResult {
  const r = spawnSync(process.execPath, [KEKCTL, ...args], { env, encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Non-blocking run: for tests with emulators in this process, which must keep answering meanwhile. */
export function kekctlAsync(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 120_000): Promise<KekctlResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [KEKCTL, ...args], { env, encoding: 'utf8', timeout: timeoutMs }, (e, out, err) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, out, err });
    });
  });
}

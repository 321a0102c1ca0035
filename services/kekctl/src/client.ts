/**
 * The admin API client: one bearer token, JSON in and out, and errors that say what to do next. kekctl has no
 * dependencies of its own (fetch is built in), so it runs wherever Node does.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /** The broker refused or failed the operation (4xx/5xx other than auth). */
  failed: 1,
  /** Bad command line. */
  usage: 2,
  /** Could not reach or authenticate to the admin API: nothing was done. */
  unreachable: 3,
  /** A drill ran to its end and failed its verdict (canary calls failed). */
  drillFailed: 4,
} as const;

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

export interface Target {
  addr: string;
  token: string;
}

interface FileConfig {
  addr?: string;
  tokenFile?: string;
}

/** ~/.config/kekctl.json (or $KEKCTL_CONFIG): `{ "addr": "...", "tokenFile": "..." }`. */
async function readFileConfig(file: string | undefined): Promise<FileConfig> {
  const p = file ?? process.env['KEKCTL_CONFIG'] ?? path.join(os.homedir(), '.config', 'kekctl.json');
  const text = await fs.readFile(p, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' && file === undefined && !process.env['KEKCTL_CONFIG']) return undefined;
    throw new CliError(`cannot read kekctl config ${p}: ${e.message}`, EXIT.usage);
  });
  if (text === undefined) return {};
  try {
    const v = JSON.parse(text) as FileConfig;
    return { addr: typeof v.addr === 'string' ? v.addr : undefined, tokenFile: typeof v.tokenFile === 'string' ? v.tokenFile : undefined };
  } catch {
    throw new CliError(`kekctl config ${p} is not valid JSON ({"addr": "http://127.0.0.1:7481", "tokenFile": "/path/admin.token"})`, EXIT.usage);
  }
}

/** Flags win over env, env over the config file. */
export async function resolveTarget(flags: { addr?: string; tokenFile?: string; config?: string }): Promise<Target> {
  const fileCfg = await readFileConfig(flags.config);
  let addr = flags.addr ?? process.env['KEKBROKER_ADMIN_ADDR'] ?? fileCfg.addr ?? 'http://127.0.0.1:7481';
  if (!/^https?:\/\//.test(addr)) addr = `http://${addr}`;
  const tokenFile = flags.tokenFile ?? process.env['KEKBROKER_ADMIN_TOKEN_FILE'] ?? fileCfg.tokenFile;
  let token = process.env['KEKBROKER_ADMIN_TOKEN'];
  if (tokenFile) {
    token = (await fs.readFile(tokenFile, 'utf8').catch((e: Error) => {
      throw new CliError(`cannot read the admin token file ${tokenFile}: ${e.message} (set --token-file or KEKBROKER_ADMIN_TOKEN_FILE)`, EXIT.usage);
    })).trim();
  }
  if (!token) throw new CliError('no admin token: pass --token-file FILE, or set KEKBROKER_ADMIN_TOKEN_FILE (or KEKBROKER_ADMIN_TOKEN)', EXIT.usage);
  return { addr: addr.replace(/\/+$/, ''), token };
}

export class AdminClient {
  constructor(private readonly t: Target, private readonly timeoutMs = 30_000) {}

  async request<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'DELETE', p: string, body?: unknown): Promise<T> {
    const { json } = await this.send(method, p, body);
    return json as T;
  }

  /** A non-JSON resource (the HTML drill report). */
  async text(p: string): Promise<string> {
    return (await this.send('GET', p)).text;
  }

  private async send(method: 'GET' | 'POST' | 'DELETE', p: string, body?: unknown): Promise<{ json: unknown; text: string }> {
    let res: Response;
    try {
      res = await fetch(`${this.t.addr}${p}`, {
        method,
        headers: { authorization: `Bearer ${this.t.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new CliError(`cannot reach the admin API at ${this.t.addr} (${cause}): is the broker running, and is --addr / KEKBROKER_ADMIN_ADDR its admin listener?`, EXIT.unreachable);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = res.ok ? undefined : { errors: [text.slice(0, 200)] };
    }
    if (res.status === 401 || res.status === 403) {
      throw new CliError(`the admin API refused the token (${res.status}): check --token-file / KEKBROKER_ADMIN_TOKEN_FILE; data-plane tokens are not admin tokens`, EXIT.unreachable);
    }
    if (!res.ok) {
      const errors = (json as { errors?: unknown[] }).errors;
      throw new CliError(`${method} ${p} failed (${res.status}): ${Array.isArray(errors) ? errors.join('; ') : text.slice(0, 200)}`, EXIT.failed);
    }
    return { json, text };
  }
}

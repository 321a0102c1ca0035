/**
 * Checks on what a valid config points at, run by `check` and before a broker binds anything: every
 * referenced file exists and is readable, secret files are not readable by other users, every
 * environment variable a provider names is set, and the listen ports are free. Problems name the config
 * path and what to do; warnings do not stop a start.
 */
import { constants as fsc, promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { BrokerConfig } from '@kekbroker/config';
import { splitListen } from './listen';

export interface PreflightResult {
  problems: string[];
  warnings: string[];
}

interface FileRef {
  at: string;
  file: string;
  secret: boolean;
  /** A file the broker creates when it is absent (the local keystore): its folder must exist instead. */
  creatable?: boolean;
}

/** Same convention as the config loader: `file`, `keystore`, `...File`, `...Path` hold paths; `...Env` names a variable. */
function walkProvider(at: string, o: Record<string, unknown>, files: FileRef[], envs: { at: string; name: string }[]): void {
  for (const [k, v] of Object.entries(o)) {
    if (typeof v === 'string' && /^(file|keystore)$|(File|Path)$/.test(k)) {
      files.push({ at: `${at}/${k}`, file: v, secret: !/ca(File|Path)?$|certFile$/i.test(k), creatable: k === 'keystore' && o['create'] !== false });
    } else if (typeof v === 'string' && /Env$/.test(k)) {
      envs.push({ at: `${at}/${k}`, name: v });
    } else if (v && typeof v === 'object' && !Array.isArray(v)) {
      walkProvider(`${at}/${k}`, v as Record<string, unknown>, files, envs);
    }
  }
}

export function referencedFiles(cfg: BrokerConfig): { files: FileRef[]; envs: { at: string; name: string }[] } {
  const files: FileRef[] = [];
  const envs: { at: string; name: string }[] = [];
  if (cfg.grpc.tls) {
    files.push({ at: '/grpc/tls/certFile', file: cfg.grpc.tls.certFile, secret: false });
    files.push({ at: '/grpc/tls/keyFile', file: cfg.grpc.tls.keyFile, secret: true });
    files.push({ at: '/grpc/tls/clientCaFile', file: cfg.grpc.tls.clientCaFile, secret: false });
  }
  if (cfg.admin.tokenFile) files.push({ at: '/admin/tokenFile', file: cfg.admin.tokenFile, secret: true });
  for (const [id, p] of Object.entries(cfg.providers)) walkProvider(`/providers/${id}`, p, files, envs);
  return { files, envs };
}

async function checkFile(ref: FileRef, out: PreflightResult): Promise<void> {
  const st = await fs.stat(ref.file).catch((e: NodeJS.ErrnoException) => e);
  if (st instanceof Error) {
    if (st.code === 'ENOENT' && ref.creatable) {
      const dir = path.dirname(ref.file);
      const ok = await fs.access(dir, fsc.W_OK).then(() => true, () => false);
      const parentOk = ok || (await fs.access(path.dirname(dir), fsc.W_OK).then(() => true, () => false));
      if (!parentOk) out.problems.push(`${ref.at}: ${ref.file} does not exist and its folder ${dir} is not writable; create the folder or fix the path`);
      else out.warnings.push(`${ref.at}: ${ref.file} does not exist; the broker will create a NEW key there on start (restore your backup first if you had one)`);
      return;
    }
    out.problems.push(`${ref.at}: cannot read ${ref.file} (${st.code ?? st.message}); create it or fix the path`);
    return;
  }
  if (!st.isFile()) {
    out.problems.push(`${ref.at}: ${ref.file} is not a regular file`);
    return;
  }
  const readable = await fs.access(ref.file, fsc.R_OK).then(() => true, () => false);
  if (!readable) out.problems.push(`${ref.at}: ${ref.file} is not readable by uid ${process.getuid?.() ?? '?'}; fix its owner or mode`);
  // Group access is allowed: Kubernetes mounts Secrets group-readable for the pod's fsGroup.
  if (ref.secret && (st.mode & 0o007) !== 0) {
    out.warnings.push(`${ref.at}: ${ref.file} holds a secret but other users can read it (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); run: chmod 0600 ${ref.file}`);
  }
}

function portFree(listen: string): Promise<string | undefined> {
  const { host, port } = splitListen(listen);
  if (port === 0) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

/** `ports`: also check that the listen addresses can be bound (at start and in `check`). */
export async function preflight(cfg: BrokerConfig, opts: { ports: boolean }): Promise<PreflightResult> {
  const out: PreflightResult = { problems: [], warnings: [] };
  const { files, envs } = referencedFiles(cfg);
  for (const f of files) await checkFile(f, out);
  for (const e of envs) {
    if (!process.env[e.name]) out.problems.push(`${e.at}: environment variable ${e.name} is not set; export it (or mount it from a Secret) before starting`);
  }
  if (opts.ports) {
    for (const [at, listen] of [['/grpc/listen', cfg.grpc.listen], ['/http/listen', cfg.http.listen], ['/admin/listen', cfg.admin.listen]] as const) {
      const err = await portFree(listen);
      if (err) out.problems.push(`${at}: cannot bind ${listen} (${err === 'EADDRINUSE' ? 'in use: is another broker running?' : err}); stop the other process or choose another address`);
    }
  }
  return out;
}

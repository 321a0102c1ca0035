/**
 * key_id continuity across restarts. key_id is derived from the current version ref of EVERY provider of a
 * keyring, so a broker that starts while one provider is unreachable cannot compute it from the KMSes alone.
 * The last refs seen are kept here: public data (key version names), never key material, and losing them
 * costs nothing but the ability to start with a provider down (the next start with all providers up rebuilds them).
 */
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';

/** The last known current version ref of every provider of a keyring, so key_id survives a provider outage at start. */
export interface VersionRefStore {
  /** providerId -> currentVersionRef, or undefined if never saved. Must not throw for "absent". */
  load(keyring: string): Promise<Record<string, string> | undefined>;
  /** Persist after every successful describe()/rotate() of all providers. Best effort: errors are logged by the caller. */
  save(keyring: string, refs: Record<string, string>): Promise<void>;
}

interface StateFile {
  version: 1;
  keyrings: Record<string, Record<string, string>>;
}

/**
 * One small JSON file (`<dir>/version-refs.json`), rewritten atomically (write to a temp file, then rename), so a
 * crash mid-write leaves the previous state. Writes are serialised in-process; one broker process owns a dir.
 */
export class FileVersionRefStore implements VersionRefStore {
  readonly path: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    this.path = join(dir, 'version-refs.json');
  }

  async load(keyring: string): Promise<Record<string, string> | undefined> {
    const state = await this.read();
    const refs = state.keyrings[keyring];
    return refs ? { ...refs } : undefined;
  }

  save(keyring: string, refs: Record<string, string>): Promise<void> {
    const next = this.chain.then(async () => {
      const state = await this.read();
      state.keyrings[keyring] = { ...refs };
      await fs.mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const tmp = `${this.path}.${process.pid}.tmp`;
      await fs.writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      await fs.rename(tmp, this.path);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async read(): Promise<StateFile> {
    let text: string;
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, keyrings: {} };
      throw e;
    }
    const parsed = JSON.parse(text) as Partial<StateFile>;
    if (parsed.version !== 1 || typeof parsed.keyrings !== 'object' || parsed.keyrings === null) {
      throw new Error(`${this.path}: not a kekbroker version-ref state file (version ${String(parsed.version)}); delete it to rebuild from the KMSes`);
    }
    return { version: 1, keyrings: parsed.keyrings };
  }
}

/** For tests and for brokers without a state dir: remembers refs for the life of the process. */
export class MemoryVersionRefStore implements VersionRefStore {
  private readonly map = new Map<string, Record<string, string>>();
  async load(keyring: string): Promise<Record<string, string> | undefined> {
    const r = this.map.get(keyring);
    return r ? { ...r } : undefined;
  }
  async save(keyring: string, refs: Record<string, string>): Promise<void> {
    this.map.set(keyring, { ...refs });
  }
}

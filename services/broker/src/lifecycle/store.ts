/**
 * Where a keyring's lifecycle lives (first-seen time of each generation, the last rotation, retired
 * generations): plain string fields per keyring, public data only. With Redis the fleet shares one copy
 * (packages/ha RedisLifecycleStore) and the state file mirrors it, so a replica restarted while Redis is down
 * still refuses a retired generation. Without Redis the state file (state.dir) is the only copy; without
 * either, the process memory (a restart forgets retirements: the broker warns at start).
 */
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';

export type FencedWrite = 'written' | 'changed' | 'not-leader';

export interface LifecycleStore {
  load(keyring: string): Promise<Record<string, string>>;
  /** First writer wins (first-seen times). */
  setIfAbsent(keyring: string, field: string, value: string): Promise<void>;
  set(keyring: string, field: string, value: string): Promise<void>;
  /**
   * Compare-and-set for singleton jobs: write `value` only if `field` still holds `expect` ('' = absent) and,
   * in a fleet, only while `token` is the leader lease. A lone replica is always its own leader.
   */
  setFenced(keyring: string, field: string, expect: string, value: string, token: string): Promise<FencedWrite>;
}

/** In-process fields: a lone replica without state.dir, and the file store's working copy. */
export class MemoryLifecycleStore implements LifecycleStore {
  protected readonly data = new Map<string, Record<string, string>>();

  async load(keyring: string): Promise<Record<string, string>> {
    return { ...this.data.get(keyring) };
  }

  async setIfAbsent(keyring: string, field: string, value: string): Promise<void> {
    if (this.fields(keyring)[field] === undefined) await this.set(keyring, field, value);
  }

  async set(keyring: string, field: string, value: string): Promise<void> {
    this.fields(keyring)[field] = value;
    await this.persist();
  }

  async setFenced(keyring: string, field: string, expect: string, value: string): Promise<FencedWrite> {
    if ((this.fields(keyring)[field] ?? '') !== expect) return 'changed';
    await this.set(keyring, field, value);
    return 'written';
  }

  protected fields(keyring: string): Record<string, string> {
    let f = this.data.get(keyring);
    if (!f) this.data.set(keyring, (f = Object.create(null) as Record<string, string>));
    return f;
  }

  protected async persist(): Promise<void> {
    /* memory only */
  }
}

interface StateFile {
  version: 1;
  keyrings: Record<string, Record<string, string>>;
}

/**
 * `<state.dir>/lifecycle.json`, rewritten atomically (temp file + fsync + rename) after every change. One
 * broker process owns a state dir; writes are serialised in-process.
 */
export class FileLifecycleStore extends MemoryLifecycleStore {
  readonly path: string;
  private loaded = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    super();
    this.path = join(dir, 'lifecycle.json');
  }

  override async load(keyring: string): Promise<Record<string, string>> {
    await this.ensureLoaded();
    return super.load(keyring);
  }

  override async set(keyring: string, field: string, value: string): Promise<void> {
    await this.ensureLoaded();
    return super.set(keyring, field, value);
  }

  override async setIfAbsent(keyring: string, field: string, value: string): Promise<void> {
    await this.ensureLoaded();
    return super.setIfAbsent(keyring, field, value);
  }

  /** Mirror a whole record read from the fleet (Redis), so a restart with Redis down still knows it. */
  async mirror(keyring: string, fields: Record<string, string>): Promise<void> {
    await this.ensureLoaded();
    const mine = this.fields(keyring);
    if (JSON.stringify(mine) === JSON.stringify(fields)) return;
    for (const k of Object.keys(mine)) delete mine[k];
    Object.assign(mine, fields);
    await this.persist();
  }

  private async ensureLoaded(): Promise<void> {
    if (this.loaded) return;
    let text: string | undefined;
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text !== undefined) {
      const parsed = JSON.parse(text) as Partial<StateFile>;
      if (parsed.version !== 1 || typeof parsed.keyrings !== 'object' || parsed.keyrings === null) {
        throw new Error(`${this.path}: not a kekbroker lifecycle file (version ${String(parsed.version)}); restore it from backup, or delete it to forget rotations and retirements`);
      }
      for (const [k, f] of Object.entries(parsed.keyrings)) Object.assign(this.fields(k), f);
    }
    this.loaded = true;
  }

  protected override persist(): Promise<void> {
    const state: StateFile = { version: 1, keyrings: Object.fromEntries(this.data) };
    const next = this.chain.then(async () => {
      await fs.mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const tmp = `${this.path}.${process.pid}.tmp`;
      const fh = await fs.open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, this.path);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** The fleet's copy (Redis) first; the state file mirrors what was read and is the fallback when Redis is down. */
export class FleetLifecycleStore implements LifecycleStore {
  constructor(private readonly redis: LifecycleStore, private readonly file: FileLifecycleStore | undefined) {}

  async load(keyring: string): Promise<Record<string, string>> {
    try {
      const fields = await this.redis.load(keyring);
      await this.file?.mirror(keyring, fields).catch(() => undefined);
      return fields;
    } catch (e) {
      if (!this.file) throw e;
      return this.file.load(keyring);
    }
  }

  setIfAbsent(keyring: string, field: string, value: string): Promise<void> {
    return this.redis.setIfAbsent(keyring, field, value);
  }

  /** Admin writes (retire) need the fleet: a write only this replica saw would not bind the others. */
  set(keyring: string, field: string, value: string): Promise<void> {
    return this.redis.set(keyring, field, value);
  }

  setFenced(keyring: string, field: string, expect: string, value: string, token: string): Promise<FencedWrite> {
    return this.redis.setFenced(keyring, field, expect, value, token);
  }
}

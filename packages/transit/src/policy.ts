/**
 * Per-key settings Vault lets clients change (`keys/:name/config`): min_decryption_version,
 * min_encryption_version, deletion_allowed. Their starting values come from the config file. Changes made
 * through the API are written to `transit.policyFile` (JSON, atomically: write + rename) and read back at
 * start and on SIGHUP, so they survive restarts. Without a policy file the API refuses changes with the fix
 * in the message: a security setting that silently vanished at the next restart would fail open.
 */
import { promises as fs, readFileSync } from 'node:fs';

export interface KeyPolicy {
  minDecryptionVersion: number;
  minEncryptionVersion: number;
  deletionAllowed: boolean;
}

export class PolicyReadOnlyError extends Error {}

export class PolicyStore {
  private overrides: Record<string, Partial<KeyPolicy>> = {};
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly defaults: ReadonlyMap<string, KeyPolicy>,
    private readonly file: string | undefined,
  ) {
    this.reload();
  }

  /** Re-read the policy file (start, SIGHUP). A missing file means no overrides; a corrupt one throws. */
  reload(): void {
    if (!this.file) return;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const parsed = JSON.parse(text) as { keys?: Record<string, Partial<KeyPolicy>> };
    if (typeof parsed !== 'object' || parsed === null || typeof parsed.keys !== 'object') {
      throw new Error(`transit.policyFile ${this.file}: expected {"keys": {...}}; fix or delete the file`);
    }
    this.overrides = parsed.keys;
  }

  get(name: string): KeyPolicy {
    const d = this.defaults.get(name) ?? { minDecryptionVersion: 1, minEncryptionVersion: 0, deletionAllowed: false };
    return { ...d, ...(this.overrides[name] ?? {}) };
  }

  async set(name: string, p: KeyPolicy): Promise<void> {
    if (!this.file) throw new PolicyReadOnlyError(`key config is read-only on this broker: set transit.keys.${name} in the config file, or configure transit.policyFile to allow API changes`);
    this.overrides = { ...this.overrides, [name]: p };
    const body = `${JSON.stringify({ keys: this.overrides }, null, 2)}\n`;
    const file = this.file;
    // Serialise writers: two config calls must not interleave their renames.
    const next = this.writing.then(async () => {
      const tmp = `${file}.${process.pid}.tmp`;
      await fs.writeFile(tmp, body, { mode: 0o600 });
      await fs.rename(tmp, file);
    });
    this.writing = next.catch(() => undefined);
    await next;
  }
}

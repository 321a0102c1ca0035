/**
 * The embedded default KEK: AES-256-GCM under a key version from the local keystore file. Version refs are
 * `local:<keystoreId>:v<N>`.
 *
 * Several processes may share one keystore (two replicas on a shared volume, an operator's second start):
 * writers take the keystore lock and read-merge-write under it, and every reader merges what it finds on
 * disk into what it holds, so no key version is ever dropped. A keystore that goes missing, empty,
 * unreadable or replaced under a running broker makes the provider unhealthy at the next refresh (describe
 * and probe fail with the reason), refuses new wraps and rotations, keeps unwrapping from memory, and
 * saves the complete keystore it holds to `<keystore>.recovered` so a restore loses nothing.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  KekError, MAX_WRAP_PLAINTEXT, aadBytes, deadlineSignal, needs, throwIfAborted, zeroize,
  type KekProvider, type ProviderDescription, type WrapContext, type WrappedKey,
} from '@kekbroker/core';
import { addVersion, mergeKeystores, newKeystore, parseKeystore, serialize, type KeystoreData } from './keystore';
import { withKeystoreLock } from './lock';
import {
  cleanTemps, createAtomic, inspectKeystore, markerFileOf, readMarker, recoveredFileOf, restoreSteps, saveKeystore, stampOf, writeAtomic, writeMarker,
} from './store';

export interface LocalProviderOptions {
  /** Provider id from config. */
  id: string;
  /** Path of the keystore file. */
  keystore: string;
  /**
   * Create the keystore if it does not exist and no keystore was ever created at this path (default true).
   * Set false once the keystore exists: then even a wiped data directory is refused rather than re-keyed.
   */
  create?: boolean;
}

const REF = /^local:([0-9a-f]{16}):v([1-9][0-9]{0,8})$/;
/** How long start waits for another writer's lock. */
const OPEN_LOCK_WAIT_MS = 10_000;

export class LocalProvider implements KekProvider {
  readonly type = 'local';
  readonly id: string;
  /** Set when this start created the keystore: the broker logs it at warn. */
  startupNotice: string | undefined;
  private readonly file: string;
  private ks!: KeystoreData;
  private stamp = '';
  /** Why the keystore on disk cannot be trusted right now; undefined when it matches what we hold. */
  private problem: string | undefined;
  /** `problem` as first found, before the note on the saved copy was added: a change means save again. */
  private rawProblem: string | undefined;
  /** Set by close(): the keys are zeroed, and must never be written anywhere after that. */
  private closed = false;

  private constructor(opts: LocalProviderOptions) {
    this.id = opts.id;
    this.file = opts.keystore;
  }

  static async open(opts: LocalProviderOptions): Promise<LocalProvider> {
    const p = new LocalProvider(opts);
    const file = opts.keystore;
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 }).catch(() => undefined);
    p.ks = await withKeystoreLock(file, deadlineSignal(OPEN_LOCK_WAIT_MS), async () => {
      await cleanTemps(file);
      const found = await inspectKeystore(file);
      if (found.kind === 'bad') {
        throw new KekError('internal', `keystore ${file}: ${found.problem}; refusing to start rather than overwrite it: ${restoreSteps(file)}`);
      }
      const marker = await readMarker(file);
      if (found.kind === 'ok') {
        if (!marker) await writeMarker(file, found.data); // keystores made before the marker existed
        return found.data;
      }
      if (marker) {
        throw new KekError('not-found',
          `keystore ${file} is missing, but ${markerFileOf(file)} shows keystore ${marker.keystoreId} was created here on ${marker.created}; ` +
          `refusing to create a new one (every ciphertext under the old one would be lost): ${restoreSteps(file)}. ` +
          `Only to start over deliberately, losing every ciphertext, remove ${markerFileOf(file)}.`);
      }
      if (opts.create === false) {
        throw new KekError('not-found', `keystore ${file} does not exist and create is false: restore it (${restoreSteps(file)}), or set create: true for the very first start`);
      }
      const fresh = newKeystore();
      if (!(await createAtomic(file, serialize(fresh)))) throw new KekError('internal', `keystore ${file} appeared while being created under the lock`);
      await writeMarker(file, fresh);
      p.startupNotice = `created a NEW local keystore ${file} (id ${fresh.keystoreId}, mode 0600): it is the only copy of this key; back it up now (docs/providers/local.md), then set create: false`;
      return fresh;
    });
    p.stamp = stampOf(await fs.stat(file));
    return p;
  }

  private ref(version: number): string {
    return `local:${this.ks.keystoreId}:v${version}`;
  }

  private unhealthy(): KekError {
    return new KekError('unavailable', `local keystore ${this.file}: ${this.problem ?? 'unknown problem'}; wraps and rotations are refused until it is restored: ${restoreSteps(this.file)}`, { provider: this.id });
  }

  /**
   * Compare the file with what we hold: one stat when nothing changed. Picks up versions added by another
   * process; records a problem (and saves what we hold) when the file went missing, empty or foreign.
   */
  private async check(): Promise<void> {
    if (this.closed) throw new KekError('unavailable', 'local provider is closed', { provider: this.id });
    const st = await fs.stat(this.file).catch(() => undefined);
    if (st && !this.problem && stampOf(st) === this.stamp) return;
    const found = await inspectKeystore(this.file);
    let problem: string | undefined;
    if (found.kind === 'missing') problem = 'the file was deleted';
    else if (found.kind === 'bad') problem = found.problem;
    else if (found.data.keystoreId !== this.ks.keystoreId) problem = `it was replaced by a different keystore (${found.data.keystoreId}; this broker serves ${this.ks.keystoreId})`;
    else {
      try {
        const { merged, missingOnDisk } = mergeKeystores(this.ks, found.data);
        this.ks = merged;
        if (missingOnDisk.length) problem = `it lacks key version(s) ${missingOnDisk.join(', ')} that this broker holds (an older copy restored?)`;
        else this.stamp = found.stamp;
      } catch (e) {
        problem = (e as Error).message; // a version with two different keys: written without the lock
      }
    }
    if (problem === undefined) this.problem = this.rawProblem = undefined;
    else if (problem !== this.rawProblem) {
      this.rawProblem = problem;
      this.problem = await this.saveRecovered(problem);
    }
  }

  /** Keep the complete keystore we hold on disk beside the damaged one, merged with any earlier recovery. */
  private async saveRecovered(problem: string): Promise<string> {
    const out = recoveredFileOf(this.file);
    try {
      await withKeystoreLock(this.file, deadlineSignal(OPEN_LOCK_WAIT_MS), async () => {
        let ks = this.ks;
        const earlier = await fs.readFile(out, 'utf8').then((t) => parseKeystore(t, out), () => undefined);
        if (earlier && earlier.keystoreId === ks.keystoreId) ks = mergeKeystores(ks, earlier).merged;
        await writeAtomic(out, serialize(ks));
        this.ks = ks;
      });
      return `${problem} (the ${this.ks.versions.length} key version(s) this broker holds are saved in ${out})`;
    } catch (e) {
      return `${problem} (saving the keys held in memory to ${out} failed too: ${(e as Error).message})`;
    }
  }

  async wrap(plaintext: Uint8Array, ctx: WrapContext, signal: AbortSignal): Promise<WrappedKey> {
    throwIfAborted(signal, 'local wrap');
    if (this.closed) throw new KekError('unavailable', 'local provider is closed', { provider: this.id });
    // A wrap under a key that is no longer safely on disk would be lost at the next restart.
    if (this.problem) throw this.unhealthy();
    needs(plaintext.length > 0 && plaintext.length <= MAX_WRAP_PLAINTEXT, `plaintext must be 1..${MAX_WRAP_PLAINTEXT} bytes`);
    const v = this.ks.versions.find((x) => x.version === this.ks.primary);
    if (!v) throw new KekError('internal', 'local keystore has no primary version');
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', v.key, nonce);
    c.setAAD(aadBytes(ctx));
    const wrapped = Buffer.concat([nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
    return { keyVersionRef: this.ref(v.version), wrapped };
  }

  async unwrap(w: WrappedKey, ctx: WrapContext, signal: AbortSignal): Promise<Buffer> {
    throwIfAborted(signal, 'local unwrap');
    const m = REF.exec(w.keyVersionRef);
    if (!m) throw new KekError('corrupt', 'key version ref is not a local provider ref', { provider: this.id });
    if (m[1] !== this.ks.keystoreId) throw new KekError('not-found', 'wrapped by a different local keystore', { provider: this.id });
    const version = Number(m[2]);
    let v = this.ks.versions.find((x) => x.version === version);
    if (!v) {
      await this.checkOnce();
      v = this.ks.versions.find((x) => x.version === version);
    }
    if (!v) throw new KekError('not-found', `local key version ${version} does not exist`, { provider: this.id });
    if (w.wrapped.length < 12 + 16 + 1) throw new KekError('corrupt', 'wrapped key too short', { provider: this.id });
    const wrapped = Buffer.from(w.wrapped);
    const d = createDecipheriv('aes-256-gcm', v.key, wrapped.subarray(0, 12));
    d.setAAD(aadBytes(ctx));
    d.setAuthTag(wrapped.subarray(wrapped.length - 16));
    const head = d.update(wrapped.subarray(12, wrapped.length - 16));
    try {
      return Buffer.concat([head, d.final()]);
    } catch {
      throw new KekError('corrupt', 'local unwrap failed authentication (tampered bytes or wrong tenant/keyring binding)', { provider: this.id });
    } finally {
      zeroize(head);
    }
  }

  /** Add a version under the lock: re-read the file, merge it with what we hold, write, keep `.prev`. */
  async rotate(signal: AbortSignal): Promise<ProviderDescription> {
    throwIfAborted(signal, 'local rotate');
    await this.checkOnce();
    if (this.problem) throw this.unhealthy();
    await withKeystoreLock(this.file, signal, async () => {
      const found = await inspectKeystore(this.file);
      if (found.kind !== 'ok' || found.data.keystoreId !== this.ks.keystoreId) {
        this.stamp = ''; // let the next check record the problem
        throw new KekError('unavailable', `local keystore ${this.file} changed while rotating; not written`, { provider: this.id });
      }
      const { merged, missingOnDisk } = mergeKeystores(this.ks, found.data);
      this.ks = merged;
      if (missingOnDisk.length) {
        this.stamp = '';
        throw new KekError('unavailable', `local keystore ${this.file} lacks key version(s) ${missingOnDisk.join(', ')}; not written`, { provider: this.id });
      }
      const next = addVersion(merged);
      await saveKeystore(this.file, next);
      this.ks = next;
      this.stamp = stampOf(await fs.stat(this.file));
    });
    return this.describeNow();
  }

  /** Cheap when nothing changed (one stat); fails with the reason while the keystore on disk is in trouble. */
  async describe(signal: AbortSignal): Promise<ProviderDescription> {
    throwIfAborted(signal, 'local describe');
    await this.checkOnce();
    if (this.problem) throw this.unhealthy();
    return this.describeNow();
  }

  /** Concurrent callers share one check. */
  private checking: Promise<void> | undefined;
  private checkOnce(): Promise<void> {
    this.checking ??= this.check().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private describeNow(): ProviderDescription {
    return {
      id: this.id,
      type: this.type,
      currentVersionRef: this.ref(this.ks.primary),
      details: { keystore: this.file, versions: String(this.ks.versions.length) },
    };
  }

  /** Reads and validates the whole file (not only its stat), so damage that keeps mtime and size shows too. */
  async probe(signal: AbortSignal): Promise<void> {
    throwIfAborted(signal, 'local probe');
    this.stamp = '';
    await this.checkOnce();
    if (this.problem) throw this.unhealthy();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const v of this.ks.versions) zeroize(v.key);
  }
}

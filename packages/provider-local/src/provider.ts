/**
 * The embedded default KEK: AES-256-GCM under a key version from the local keystore file. Version refs are
 * `local:<keystoreId>:v<N>`. Another process (a second broker on the same node, or an operator's CLI) may
 * rotate the file; we reload it when it changed on disk.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import {
  KekError, MAX_WRAP_PLAINTEXT, aadBytes, needs, throwIfAborted, zeroize,
  type KekProvider, type ProviderDescription, type WrapContext, type WrappedKey,
} from '@kekbroker/core';
import { addVersion, createKeystoreExclusive, newKeystore, readKeystore, writeKeystore, type KeystoreData } from './keystore';

export interface LocalProviderOptions {
  /** Provider id from config. */
  id: string;
  /** Path of the keystore file. */
  keystore: string;
  /** Create the keystore if it does not exist (default true). */
  create?: boolean;
}

const REF = /^local:([0-9a-f]{16}):v([1-9][0-9]{0,8})$/;

export class LocalProvider implements KekProvider {
  readonly type = 'local';
  readonly id: string;
  private readonly file: string;
  private ks!: KeystoreData;
  private stamp = '';

  private constructor(opts: LocalProviderOptions) {
    this.id = opts.id;
    this.file = opts.keystore;
  }

  static async open(opts: LocalProviderOptions): Promise<LocalProvider> {
    const p = new LocalProvider(opts);
    let ks = await readKeystore(opts.keystore);
    if (!ks) {
      if (opts.create === false) throw new KekError('not-found', `keystore ${opts.keystore} does not exist and create is off`);
      const fresh = newKeystore();
      // O_EXCL: two processes starting at once must not each mint a different keystore.
      ks = (await createKeystoreExclusive(opts.keystore, fresh)) ? fresh : await readKeystore(opts.keystore);
      if (!ks) throw new KekError('internal', `keystore ${opts.keystore} vanished while being created`);
    }
    p.ks = ks;
    p.stamp = await p.statStamp();
    return p;
  }

  private ref(version: number): string {
    return `local:${this.ks.keystoreId}:v${version}`;
  }

  private async statStamp(): Promise<string> {
    const st = await fs.stat(this.file).catch(() => undefined);
    return st ? `${st.mtimeMs}:${st.size}:${st.ino}` : '';
  }

  /** Pick up a rotation done by another process. Cheap: one stat. */
  private async reloadIfChanged(): Promise<void> {
    const stamp = await this.statStamp();
    if (stamp === this.stamp || stamp === '') return;
    const ks = await readKeystore(this.file);
    if (ks && ks.keystoreId === this.ks.keystoreId) {
      this.ks = ks;
      this.stamp = stamp;
    }
  }

  async wrap(plaintext: Uint8Array, ctx: WrapContext, signal: AbortSignal): Promise<WrappedKey> {
    throwIfAborted(signal, 'local wrap');
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
      await this.reloadIfChanged();
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

  async rotate(signal: AbortSignal): Promise<ProviderDescription> {
    throwIfAborted(signal, 'local rotate');
    await this.reloadIfChanged();
    const next = addVersion(this.ks);
    await writeKeystore(this.file, next);
    this.ks = next;
    this.stamp = await this.statStamp();
    return this.describeNow();
  }

  async describe(signal: AbortSignal): Promise<ProviderDescription> {
    throwIfAborted(signal, 'local describe');
    await this.reloadIfChanged();
    return this.describeNow();
  }

  private describeNow(): ProviderDescription {
    return {
      id: this.id,
      type: this.type,
      currentVersionRef: this.ref(this.ks.primary),
      details: { keystore: this.file, versions: String(this.ks.versions.length) },
    };
  }

  async probe(signal: AbortSignal): Promise<void> {
    throwIfAborted(signal, 'local probe');
    await fs.access(this.file).catch((e: unknown) => {
      throw new KekError('unavailable', `keystore ${this.file} is not readable`, { provider: this.id, cause: e });
    });
  }

  async close(): Promise<void> {
    for (const v of this.ks.versions) zeroize(v.key);
  }
}

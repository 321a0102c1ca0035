/**
 * Transit operations on one item at a time, free of HTTP: encrypt, decrypt, rewrap, datakey, and the key
 * facts (read, rotate, config). Errors are TransitError with the HTTP status and Vault's message.
 */
import { randomBytes } from 'node:crypto';
import { toKekError, zeroize } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import { CiphertextError, decodeBase64, messageKey, open, parseCiphertext, seal, type Binding } from './ciphertext';
import type { DataKeyCache } from './data-keys';
import { PolicyReadOnlyError, type KeyPolicy, type PolicyStore } from './policy';
import { latestVersion } from './versions';

export class TransitError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface TransitKey {
  name: string;
  keyring: Keyring;
  versionProvider: string;
  derived: boolean;
}

export interface EncryptItem { plaintext?: string; context?: string; key_version?: number; associated_data?: string }
export interface DecryptItem { ciphertext?: string; context?: string; associated_data?: string }

/** Per-request message keys by (envelope, context); see TransitEngine.open and releaseMemo. */
export type MessageKeyMemo = Map<string, Promise<Buffer>>;

/** Zero every message key of a request's memo, once every item has settled. */
export async function releaseMemo(memo: MessageKeyMemo): Promise<void> {
  for (const p of memo.values()) zeroize(await p.catch(() => undefined));
  memo.clear();
}

const DERIVED_MISSING = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

export class TransitEngine {
  constructor(
    private readonly keys: ReadonlyMap<string, TransitKey>,
    private readonly policy: PolicyStore,
    private readonly dataKeys: DataKeyCache,
    private readonly maxPlaintextBytes: number,
  ) {}

  private readonly refreshes = new Map<string, { at: number; pending: boolean; done: Promise<void> }>();

  has(name: string): boolean {
    return this.keys.has(name);
  }

  names(): string[] {
    return [...this.keys.keys()].sort();
  }

  key(name: string, missing = 'encryption key not found'): TransitKey {
    const k = this.keys.get(name);
    if (!k) throw new TransitError(400, missing);
    return k;
  }

  /** Per transit key: the latest version last read for the keyring's key_id. */
  private readonly latestByKeyId = new Map<string, { keyId: string; version: number }>();

  /**
   * The key's latest version. It is a function of the keyring's generation (the version provider's current
   * ref is part of it), so it is read from the keyring's status (a deep copy: ~10 µs, the top of the
   * encrypt profile) only when the key_id changed.
   */
  latest(k: TransitKey): number {
    const keyId = k.keyring.keyId;
    const memo = this.latestByKeyId.get(k.name);
    if (keyId !== undefined && memo?.keyId === keyId) return memo.version;
    const v = latestVersion(k.keyring.status(), k.versionProvider);
    if (v === undefined) throw new TransitError(503, `key ${k.name} is not ready: ${k.keyring.status().reason}`);
    if (keyId !== undefined) this.latestByKeyId.set(k.name, { keyId, version: v });
    return v;
  }

  /**
   * Another replica may have rotated a moment ago (this one re-reads versions every 15 s): before calling a
   * ciphertext "too new", re-read the keyring's versions, at most once a second per key so that forged
   * `v999` prefixes cannot turn into a KMS call each.
   */
  private async refreshedLatest(k: TransitKey, signal: AbortSignal): Promise<number> {
    const now = Date.now();
    let r = this.refreshes.get(k.name);
    if (!r || (now - r.at >= 1000 && !r.pending)) {
      const entry: { at: number; pending: boolean; done: Promise<void> } = { at: now, pending: true, done: Promise.resolve() };
      entry.done = k.keyring.refresh(signal).catch(() => undefined).finally(() => { entry.pending = false; });
      this.refreshes.set(k.name, (r = entry));
    }
    await r.done;
    return this.latest(k);
  }

  async encrypt(k: TransitKey, tenant: string, item: EncryptItem, signal: AbortSignal): Promise<{ ciphertext: string; key_version: number }> {
    if (item.plaintext === undefined) throw new TransitError(400, 'missing plaintext to encrypt');
    const plaintext = b64(item.plaintext, 'plaintext');
    try {
      if (plaintext.length > this.maxPlaintextBytes) throw new TransitError(400, `plaintext is ${plaintext.length} bytes; the limit is ${this.maxPlaintextBytes}`);
      return await this.sealWithLatest(k, tenant, plaintext, item, signal);
    } finally {
      zeroize(plaintext);
    }
  }

  /** Seal a plaintext this engine lent us; shared by encrypt, rewrap and datakey. */
  private async sealWithLatest(k: TransitKey, tenant: string, plaintext: Buffer, item: EncryptItem, signal: AbortSignal): Promise<{ ciphertext: string; key_version: number }> {
    const context = this.context(k, item.context);
    const ad = item.associated_data === undefined ? Buffer.alloc(0) : b64(item.associated_data, 'associated_data');
    const latest = this.latest(k);
    const pol = this.policy.get(k.name);
    const want = item.key_version ?? 0;
    if (want > latest) throw new TransitError(400, 'requested version for encryption is higher than the latest key version');
    if (want !== 0 && want < pol.minEncryptionVersion) throw new TransitError(400, 'requested version for encryption is less than the minimum encryption key version');
    if (want !== 0 && want !== latest) throw new TransitError(400, `kekbroker encrypts with the latest key version only (${latest}): omit key_version or set it to 0 or ${latest}`);
    try {
      return await this.dataKeys.use({ keyName: k.name, tenant, keyring: k.keyring, versionProvider: k.versionProvider }, plaintext.length, signal, (dk) => ({
        ciphertext: seal(dk.messageKey(k.name, context), dk.envelope, plaintext, binding(k, dk.version, tenant, context, ad)),
        key_version: dk.version,
      }));
    } catch (e) {
      throw fromKek(e);
    }
  }

  /**
   * Returns the plaintext (owned by the caller, who zeroes it) and the version it was sealed under. `keys`, if
   * given, is the request's memo of message keys by (envelope, context): the items of a batch mostly share a
   * data key, so it is unwrapped and derived once per request. The request owns the memo and zeroes it.
   */
  async open(k: TransitKey, tenant: string, item: DecryptItem, signal: AbortSignal, keys?: MessageKeyMemo): Promise<{ plaintext: Buffer; version: number }> {
    if (item.ciphertext === undefined || item.ciphertext === '') throw new TransitError(400, 'missing ciphertext to decrypt');
    const context = this.context(k, item.context);
    const ad = item.associated_data === undefined ? Buffer.alloc(0) : b64(item.associated_data, 'associated_data');
    let ct;
    try {
      ct = parseCiphertext(item.ciphertext);
    } catch (e) {
      throw new TransitError(400, (e as Error).message);
    }
    if (ct.version > this.latest(k) && ct.version > (await this.refreshedLatest(k, signal))) throw new TransitError(400, 'invalid ciphertext: version is too new');
    if (ct.version < this.policy.get(k.name).minDecryptionVersion) throw new TransitError(400, 'ciphertext or signature version is disallowed by policy (too old)');
    const derive = async (): Promise<Buffer> => {
      let dataKey: Buffer | undefined;
      try {
        dataKey = (await k.keyring.unwrap(tenant, ct.envelope, signal)).plaintext;
        return messageKey(dataKey, { keyName: k.name, context });
      } finally {
        zeroize(dataKey);
      }
    };
    const b = binding(k, ct.version, tenant, context, ad);
    try {
      // A ciphertext this replica sealed recently: its data key is still in the encrypt-side cache.
      const recent = this.dataKeys.withEnvelope(tenant, ct.envelope, k.keyring, (dk) => open(dk.messageKey(k.name, context), ct, b));
      if (recent) return { plaintext: recent, version: ct.version };
    } catch (e) {
      if (e instanceof CiphertextError) throw new TransitError(400, e.message);
      throw e;
    }
    let msgKey: Buffer | undefined;
    try {
      if (keys) {
        const id = `${ct.envelope.toString('latin1')}\0${context.toString('base64')}`;
        let p = keys.get(id);
        if (!p) keys.set(id, (p = derive()));
        msgKey = await p;
      } else {
        msgKey = await derive();
      }
      return { plaintext: open(msgKey, ct, b), version: ct.version };
    } catch (e) {
      if (e instanceof CiphertextError || e instanceof TransitError) throw new TransitError(400, e.message);
      throw fromKek(e);
    } finally {
      if (!keys) zeroize(msgKey);
    }
  }

  async decrypt(k: TransitKey, tenant: string, item: DecryptItem, signal: AbortSignal, keys?: MessageKeyMemo): Promise<{ plaintext: string }> {
    const { plaintext } = await this.open(k, tenant, item, signal, keys);
    try {
      return { plaintext: plaintext.toString('base64') };
    } finally {
      zeroize(plaintext);
    }
  }

  async rewrap(k: TransitKey, tenant: string, item: DecryptItem & { key_version?: number }, signal: AbortSignal, keys?: MessageKeyMemo): Promise<{ ciphertext: string; key_version: number }> {
    const { plaintext } = await this.open(k, tenant, item, signal, keys);
    try {
      return await this.sealWithLatest(k, tenant, plaintext, item, signal);
    } finally {
      zeroize(plaintext);
    }
  }

  async datakey(k: TransitKey, tenant: string, bits: number, item: EncryptItem, signal: AbortSignal): Promise<{ ciphertext: string; key_version: number; plaintext: string }> {
    const key = randomBytes(bits / 8);
    try {
      const out = await this.sealWithLatest(k, tenant, key, item, signal);
      return { ...out, plaintext: key.toString('base64') };
    } finally {
      zeroize(key);
    }
  }

  /** Vault's key read shape. Versions run from min_decryption_version to latest; creation times are unknown (0). */
  read(k: TransitKey): Record<string, unknown> {
    const latest = this.latest(k);
    const p = this.policy.get(k.name);
    const keys: Record<string, number> = {};
    for (let v = Math.max(1, p.minDecryptionVersion, latest - 999); v <= latest; v++) keys[String(v)] = 0;
    return {
      name: k.name, type: 'aes256-gcm96', derived: k.derived, convergent_encryption: false, exportable: false,
      allow_plaintext_backup: false, deletion_allowed: p.deletionAllowed, keys, latest_version: latest,
      min_available_version: 0, min_decryption_version: p.minDecryptionVersion, min_encryption_version: p.minEncryptionVersion,
      supports_encryption: true, supports_decryption: true, supports_derivation: true, supports_signing: false,
      auto_rotate_period: 0, imported_key: false, keyring: k.keyring.name, key_id: k.keyring.keyId,
    };
  }

  async rotate(k: TransitKey, signal: AbortSignal): Promise<void> {
    try {
      await k.keyring.rotate(signal);
    } catch (e) {
      throw fromKek(e);
    }
  }

  async configure(k: TransitKey, change: { min_decryption_version?: number; min_encryption_version?: number; deletion_allowed?: boolean }): Promise<void> {
    const cur = this.policy.get(k.name);
    const next: KeyPolicy = {
      minDecryptionVersion: change.min_decryption_version ?? cur.minDecryptionVersion,
      minEncryptionVersion: change.min_encryption_version ?? cur.minEncryptionVersion,
      deletionAllowed: change.deletion_allowed ?? cur.deletionAllowed,
    };
    if (next.minDecryptionVersion === 0) next.minDecryptionVersion = 1;
    const latest = this.latest(k);
    if (next.minDecryptionVersion > latest) throw new TransitError(400, 'cannot set min_decryption_version greater than the latest version');
    if (next.minEncryptionVersion > latest) throw new TransitError(400, 'cannot set min_encryption_version greater than the latest version');
    if (next.minEncryptionVersion !== 0 && next.minEncryptionVersion < next.minDecryptionVersion) {
      throw new TransitError(400, 'min encryption version should not be less than min decryption version');
    }
    try {
      await this.policy.set(k.name, next);
    } catch (e) {
      if (e instanceof PolicyReadOnlyError) throw new TransitError(400, e.message);
      throw e;
    }
  }

  private context(k: TransitKey, raw: string | undefined): Buffer {
    if (!k.derived) return Buffer.alloc(0);
    if (raw === undefined || raw === '') throw new TransitError(400, DERIVED_MISSING);
    return b64(raw, 'context');
  }
}

function binding(k: TransitKey, version: number, tenant: string, context: Buffer, associatedData: Buffer): Binding {
  return { keyName: k.name, version, tenant, context, associatedData };
}

function b64(s: string, field: string): Buffer {
  const b = decodeBase64(s);
  if (!b) throw new TransitError(400, `failed to base64-decode ${field}`);
  return b;
}

/** Keyring errors: the caller's mistakes are 400 (as Vault answers every transit user error), the rest keep their status. */
function fromKek(e: unknown): TransitError {
  if (e instanceof TransitError) return e;
  const err = toKekError(e);
  if (err.code === 'corrupt' || err.code === 'invalid-input') return new TransitError(400, `invalid ciphertext: ${err.message}`);
  return new TransitError(err.httpStatus, err.message);
}


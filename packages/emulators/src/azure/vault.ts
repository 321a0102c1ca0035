/**
 * The emulated vault: named keys, each a list of versions, and the two crypto operations kekbroker uses.
 * Real cryptography (node:crypto), so a blob wrapped here only unwraps with the same key version, and a
 * flipped bit fails exactly as it would in Key Vault.
 */
import {
  constants, createCipheriv, createDecipheriv, generateKeyPair, privateDecrypt, publicEncrypt, randomBytes,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Key types the emulator creates. `-HSM` types behave like their software twins here. */
export type EmulatedKeyType = 'RSA' | 'RSA-HSM' | 'oct' | 'oct-HSM';

export interface KeyVersion {
  readonly version: string;
  readonly kty: EmulatedKeyType;
  readonly size: number;
  keyOps: string[];
  enabled: boolean;
  readonly created: number;
  updated: number;
  tags: Record<string, string>;
  readonly rsa?: { readonly privateKey: KeyObject; readonly publicKey: KeyObject; readonly n: Buffer; readonly e: Buffer };
  readonly secret?: Buffer;
}

/** An error the vault answers with: HTTP status plus Key Vault's `{"error":{"code","message"}}` body. */
export class VaultError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly innerCode?: string,
  ) {
    super(message);
  }
}

const RSA_SIZES = [2048, 3072, 4096];
const RSA_OPS = ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'];
const OCT_OPS = ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'];
/** RFC 3394 default initial value: the integrity check that makes a tampered A256KW blob fail. */
const KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
export const KEY_NAME = /^[0-9a-zA-Z-]{1,127}$/;

export interface CreateKeyInput {
  kty: string;
  size?: number;
  keyOps?: string[];
  enabled?: boolean;
  tags?: Record<string, string>;
}

export class Vault {
  private readonly keys = new Map<string, KeyVersion[]>();

  /** Create a key, or a new version of an existing one (what Key Vault does on create with a used name). */
  async create(name: string, input: CreateKeyInput): Promise<KeyVersion> {
    if (!KEY_NAME.test(name)) throw new VaultError(400, 'BadParameter', 'Key name must match ^[0-9a-zA-Z-]{1,127}$.');
    const kv = await newVersion(input);
    const list = this.keys.get(name) ?? [];
    list.push(kv);
    this.keys.set(name, list);
    return kv;
  }

  /** A new version with the latest version's type, size and operations (POST /keys/{name}/rotate). */
  async rotate(name: string): Promise<KeyVersion> {
    const latest = this.get(name);
    const kv = await newVersion({ kty: latest.kty, size: latest.size, keyOps: [...latest.keyOps], tags: { ...latest.tags } });
    this.keys.get(name)?.push(kv);
    return kv;
  }

  /** A version, or the latest one when `version` is empty. */
  get(name: string, version?: string): KeyVersion {
    const list = this.keys.get(name);
    const kv = version ? list?.find((v) => v.version === version) : list?.[list.length - 1];
    if (!kv) {
      const what = version ? `A key with (name/id) ${name}/${version} was not found in this key vault.` : `A key with (name/id) ${name} was not found in this key vault.`;
      throw new VaultError(404, 'KeyNotFound', `${what} If you recently deleted this key you may be able to recover it using the correct recovery command.`);
    }
    return kv;
  }

  /** Enable or disable every version of a key: what an operator does to stop a key being used. */
  setEnabled(name: string, enabled: boolean): void {
    for (const v of this.all(name)) {
      v.enabled = enabled;
      v.updated = epoch();
    }
  }

  setKeyOps(name: string, ops: string[]): void {
    for (const v of this.all(name)) {
      v.keyOps = [...ops];
      v.updated = epoch();
    }
  }

  private all(name: string): KeyVersion[] {
    const list = this.keys.get(name);
    if (!list) throw new VaultError(404, 'KeyNotFound', `A key with (name/id) ${name} was not found in this key vault.`);
    return list;
  }

  /** PATCH /keys/{name}/{version}: attributes (enabled), key_ops and tags of one version. */
  update(name: string, version: string | undefined, patch: { enabled?: boolean; keyOps?: string[]; tags?: Record<string, string> }): KeyVersion {
    const kv = this.get(name, version);
    if (patch.enabled !== undefined) kv.enabled = patch.enabled;
    if (patch.keyOps !== undefined) kv.keyOps = [...patch.keyOps];
    if (patch.tags !== undefined) kv.tags = { ...patch.tags };
    kv.updated = epoch();
    return kv;
  }

  wrapOrUnwrap(kv: KeyVersion, op: 'wrapKey' | 'unwrapKey', alg: string, value: Buffer): Buffer {
    // Key Vault refuses crypto on a disabled key with 403 Forbidden / innererror KeyDisabled.
    if (!kv.enabled) throw new VaultError(403, 'Forbidden', `Operation ${op} is not allowed on a disabled key.`, 'KeyDisabled');
    if (!kv.keyOps.includes(op)) throw new VaultError(403, 'Forbidden', `Operation ${op} is not permitted on this key.`, 'KeyOperationForbidden');
    if (kv.rsa) return rsa(kv.rsa, op, alg, value);
    if (kv.secret) return aesKw(kv.secret, op, alg, value);
    throw new VaultError(400, 'BadParameter', `Key type ${kv.kty} does not support ${op}.`);
  }
}

export function epoch(): number {
  return Math.floor(Date.now() / 1000);
}

async function newVersion(input: CreateKeyInput): Promise<KeyVersion> {
  const kty = input.kty;
  const common = {
    // Real versions are 32 lower-case hex characters (a GUID without dashes).
    version: randomBytes(16).toString('hex'),
    enabled: input.enabled ?? true,
    created: epoch(),
    updated: epoch(),
    tags: input.tags ?? {},
  };
  if (kty === 'RSA' || kty === 'RSA-HSM') {
    const size = input.size ?? 2048;
    if (!RSA_SIZES.includes(size)) throw new VaultError(400, 'BadParameter', `RSA key size ${size} is not supported; use 2048, 3072 or 4096.`);
    const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength: size, publicExponent: 0x10001 });
    const jwk = publicKey.export({ format: 'jwk' });
    const n = Buffer.from(jwk.n ?? '', 'base64url');
    const e = Buffer.from(jwk.e ?? '', 'base64url');
    return { ...common, kty, size, keyOps: input.keyOps ?? [...RSA_OPS], rsa: { privateKey, publicKey, n, e } };
  }
  if (kty === 'oct' || kty === 'oct-HSM') {
    const size = input.size ?? 256;
    if (size !== 256) throw new VaultError(400, 'BadParameter', `oct key size ${size} is not supported by this emulator; use 256.`);
    return { ...common, kty, size, keyOps: input.keyOps ?? [...OCT_OPS], secret: randomBytes(32) };
  }
  throw new VaultError(400, 'BadParameter', `Key type ${kty} is not supported by this emulator (RSA, RSA-HSM, oct, oct-HSM).`);
}

function rsa(k: NonNullable<KeyVersion['rsa']>, op: 'wrapKey' | 'unwrapKey', alg: string, value: Buffer): Buffer {
  const oaepHash = alg === 'RSA-OAEP-256' ? 'sha256' : alg === 'RSA-OAEP' ? 'sha1' : undefined;
  if (!oaepHash) throw new VaultError(400, 'BadParameter', `Algorithm ${alg} is not supported for RSA keys by this emulator (RSA-OAEP-256, RSA-OAEP).`);
  try {
    return op === 'wrapKey'
      ? publicEncrypt({ key: k.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, value)
      : privateDecrypt({ key: k.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, value);
  } catch {
    // Key Vault answers a bad ciphertext (or an over-long plaintext) with 400 BadParameter.
    throw new VaultError(400, 'BadParameter', op === 'wrapKey' ? 'The value is too long for the key and algorithm.' : 'The parameter is incorrect: the ciphertext could not be decrypted.');
  }
}

function aesKw(secret: Buffer, op: 'wrapKey' | 'unwrapKey', alg: string, value: Buffer): Buffer {
  if (alg !== 'A256KW') throw new VaultError(400, 'BadParameter', `Algorithm ${alg} is not supported for a 256-bit oct key (A256KW).`);
  // RFC 3394 works on 64-bit blocks: at least two for the key, three for the wrapped form.
  const min = op === 'wrapKey' ? 16 : 24;
  if (value.length < min || value.length % 8 !== 0) {
    throw new VaultError(400, 'BadParameter', `A256KW ${op === 'wrapKey' ? 'key' : 'ciphertext'} length must be a multiple of 8 and at least ${min} bytes.`);
  }
  try {
    const c = op === 'wrapKey' ? createCipheriv('id-aes256-wrap', secret, KW_IV) : createDecipheriv('id-aes256-wrap', secret, KW_IV);
    return Buffer.concat([c.update(value), c.final()]);
  } catch {
    throw new VaultError(400, 'BadParameter', 'The parameter is incorrect: the wrapped key failed the integrity check.');
  }
}

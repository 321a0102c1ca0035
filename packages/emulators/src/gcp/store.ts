/**
 * The emulator's in-memory Cloud KMS: key rings, ENCRYPT_DECRYPT CryptoKeys and their numbered versions,
 * with the state rules the real service enforces (only ENABLED versions encrypt or decrypt, only an ENABLED
 * version can become primary). Each version holds its own random AES-256-GCM key; the ciphertext carries
 * the version id, as real Cloud KMS ciphertexts do, which is why Decrypt takes the CryptoKey name only.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { RpcError } from './rpc-error';

export type VersionState = 'PENDING_GENERATION' | 'ENABLED' | 'DISABLED' | 'DESTROY_SCHEDULED' | 'DESTROYED';

export interface Timestamp {
  seconds: string;
  nanos: number;
}

export interface VersionRec {
  id: number;
  state: VersionState;
  material: Buffer;
  createTime: Timestamp;
  /** While PENDING_GENERATION: when the version becomes ENABLED (an HSM key takes a moment to generate). */
  readyAt?: number;
}

export interface KeyRec {
  name: string;
  createTime: Timestamp;
  versions: Map<number, VersionRec>;
  nextId: number;
  primaryId: number | undefined;
  labels: Record<string, string>;
}

const ID = /^[a-zA-Z0-9_-]{1,63}$/;
const KEY_NAME = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/;
const VERSION_NAME = /^(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+)\/cryptoKeyVersions\/([1-9][0-9]{0,9})$/;
const RING_NAME = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+$/;
const LOCATION_NAME = /^projects\/[^/]+\/locations\/[^/]+$/;

/** Format magic + version id (uint32 BE) + 12-byte nonce + ciphertext + 16-byte GCM tag. */
const MAGIC = 0x4b;
const HEADER = 5;
const NONCE = 12;
const TAG = 16;

// The text real Cloud KMS returns for wrong AAD or a damaged ciphertext.
const DECRYPT_FAILED = 'Decryption failed: the ciphertext is invalid.';

/** Which state changes UpdateCryptoKeyVersion / Destroy / Restore allow (from → to). */
const TRANSITIONS: Record<VersionState, readonly VersionState[]> = {
  ENABLED: ['ENABLED', 'DISABLED', 'DESTROY_SCHEDULED'],
  DISABLED: ['ENABLED', 'DISABLED', 'DESTROY_SCHEDULED'],
  DESTROY_SCHEDULED: ['DESTROY_SCHEDULED', 'DISABLED'], // RestoreCryptoKeyVersion lands in DISABLED
  PENDING_GENERATION: [],
  DESTROYED: [],
};

const invalid = (msg: string): RpcError => new RpcError(grpc.status.INVALID_ARGUMENT, msg);

export class KmsStore {
  private readonly rings = new Map<string, Timestamp>();
  private readonly keys = new Map<string, KeyRec>();
  private lastNs = 0n;

  constructor(private readonly opts: { generationDelayMs?: number } = {}) {}

  /** A strictly increasing create time: two keys created with the same name never share one. */
  now(): Timestamp {
    const wall = BigInt(Date.now()) * 1_000_000n;
    this.lastNs = wall > this.lastNs ? wall : this.lastNs + 1000n;
    return { seconds: String(this.lastNs / 1_000_000_000n), nanos: Number(this.lastNs % 1_000_000_000n) };
  }

  createKeyRing(parent: string, id: string): { name: string; createTime: Timestamp } {
    if (!LOCATION_NAME.test(parent)) throw invalid(`parent must be projects/*/locations/*, got "${parent}"`);
    if (!ID.test(id)) throw invalid('key_ring_id must match [a-zA-Z0-9_-]{1,63}');
    const name = `${parent}/keyRings/${id}`;
    if (this.rings.has(name)) throw new RpcError(grpc.status.ALREADY_EXISTS, `KeyRing ${name} already exists.`);
    const createTime = this.now();
    this.rings.set(name, createTime);
    return { name, createTime };
  }

  getKeyRing(name: string): { name: string; createTime: Timestamp } {
    const createTime = this.rings.get(name);
    if (!createTime) throw new RpcError(grpc.status.NOT_FOUND, `KeyRing ${name} not found.`);
    return { name, createTime };
  }

  createCryptoKey(parent: string, id: string, opts: { skipInitialVersion?: boolean; labels?: Record<string, string>; pending?: boolean } = {}): KeyRec {
    if (!RING_NAME.test(parent)) throw invalid(`parent must be a KeyRing name, got "${parent}"`);
    this.getKeyRing(parent);
    if (!ID.test(id)) throw invalid('crypto_key_id must match [a-zA-Z0-9_-]{1,63}');
    const name = `${parent}/cryptoKeys/${id}`;
    if (this.keys.has(name)) throw new RpcError(grpc.status.ALREADY_EXISTS, `CryptoKey ${name} already exists.`);
    const rec: KeyRec = { name, createTime: this.now(), versions: new Map(), nextId: 1, primaryId: undefined, labels: opts.labels ?? {} };
    this.keys.set(name, rec);
    if (!opts.skipInitialVersion) rec.primaryId = this.addVersion(rec, opts.pending ?? true).id;
    return rec;
  }

  getCryptoKey(name: string): KeyRec {
    if (!KEY_NAME.test(name)) throw invalid(`name must be a CryptoKey name, got "${name}"`);
    const rec = this.keys.get(name);
    if (!rec) throw new RpcError(grpc.status.NOT_FOUND, `CryptoKey ${name} not found.`);
    this.settle(rec);
    return rec;
  }

  createVersion(parent: string): { key: KeyRec; version: VersionRec } {
    const key = this.getCryptoKey(parent);
    return { key, version: this.addVersion(key, true) };
  }

  getVersion(name: string): { key: KeyRec; version: VersionRec } {
    const m = VERSION_NAME.exec(name);
    if (!m) throw invalid(`name must be a CryptoKeyVersion name, got "${name}"`);
    const key = this.getCryptoKey(m[1] as string);
    const version = key.versions.get(Number(m[2]));
    if (!version) throw new RpcError(grpc.status.NOT_FOUND, `CryptoKeyVersion ${name} not found.`);
    return { key, version };
  }

  setPrimary(keyName: string, versionId: string): KeyRec {
    const { key, version } = this.getVersion(`${keyName}/cryptoKeyVersions/${versionId}`);
    if (version.state !== 'ENABLED') throw this.notEnabled(key, version);
    key.primaryId = version.id;
    return key;
  }

  /** UpdateCryptoKeyVersion (state only) and the test helpers disableKey/enableKey. */
  setState(name: string, state: VersionState): { key: KeyRec; version: VersionRec } {
    const found = this.getVersion(name);
    const from = found.version.state;
    if (!TRANSITIONS[from].includes(state)) throw new RpcError(grpc.status.FAILED_PRECONDITION, `${name} cannot change from state ${from} to ${state}.`);
    found.version.state = state;
    return found;
  }

  encrypt(name: string, plaintext: Buffer, aad: Buffer): { versionName: string; ciphertext: Buffer } {
    let key: KeyRec;
    let version: VersionRec | undefined;
    if (VERSION_NAME.test(name)) ({ key, version } = this.getVersion(name));
    else {
      key = this.getCryptoKey(name);
      version = key.primaryId === undefined ? undefined : key.versions.get(key.primaryId);
      if (!version) throw new RpcError(grpc.status.FAILED_PRECONDITION, `${name} has no primary version.`);
    }
    if (plaintext.length === 0) throw invalid('plaintext is required.');
    if (plaintext.length > 65536 || aad.length > 65536) throw invalid('plaintext and additional_authenticated_data are limited to 64 KiB.');
    if (version.state !== 'ENABLED') throw this.notEnabled(key, version);
    const header = Buffer.alloc(HEADER);
    header[0] = MAGIC;
    header.writeUInt32BE(version.id, 1);
    const nonce = randomBytes(NONCE);
    const c = createCipheriv('aes-256-gcm', version.material, nonce);
    c.setAAD(Buffer.concat([header, aad]));
    const ciphertext = Buffer.concat([header, nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
    return { versionName: versionName(key, version), ciphertext };
  }

  decrypt(name: string, ciphertext: Buffer, aad: Buffer): { plaintext: Buffer; usedPrimary: boolean } {
    if (VERSION_NAME.test(name)) throw invalid('Decrypt takes a CryptoKey name; the version is read from the ciphertext.');
    const key = this.getCryptoKey(name);
    if (ciphertext.length < HEADER + NONCE + TAG + 1 || ciphertext[0] !== MAGIC) throw invalid(DECRYPT_FAILED);
    const version = key.versions.get(ciphertext.readUInt32BE(1));
    if (!version) throw invalid(DECRYPT_FAILED);
    if (version.state !== 'ENABLED') throw this.notEnabled(key, version);
    const d = createDecipheriv('aes-256-gcm', version.material, ciphertext.subarray(HEADER, HEADER + NONCE));
    d.setAAD(Buffer.concat([ciphertext.subarray(0, HEADER), aad]));
    d.setAuthTag(ciphertext.subarray(ciphertext.length - TAG));
    try {
      const plaintext = Buffer.concat([d.update(ciphertext.subarray(HEADER + NONCE, ciphertext.length - TAG)), d.final()]);
      return { plaintext, usedPrimary: version.id === key.primaryId };
    } catch {
      throw invalid(DECRYPT_FAILED);
    }
  }

  private addVersion(key: KeyRec, mayBePending: boolean): VersionRec {
    const delay = mayBePending ? (this.opts.generationDelayMs ?? 0) : 0;
    const v: VersionRec = { id: key.nextId++, state: delay > 0 ? 'PENDING_GENERATION' : 'ENABLED', material: randomBytes(32), createTime: this.now() };
    if (delay > 0) v.readyAt = Date.now() + delay;
    key.versions.set(v.id, v);
    return v;
  }

  /** Finish generating versions whose time has come (lazily, so no timers outlive the emulator). */
  private settle(key: KeyRec): void {
    for (const v of key.versions.values()) {
      if (v.state === 'PENDING_GENERATION' && v.readyAt !== undefined && Date.now() >= v.readyAt) {
        v.state = 'ENABLED';
        delete v.readyAt;
      }
    }
  }

  private notEnabled(key: KeyRec, v: VersionRec): RpcError {
    // Real text: "projects/…/cryptoKeyVersions/1 is not enabled, current state is: DISABLED."
    return new RpcError(grpc.status.FAILED_PRECONDITION, `${versionName(key, v)} is not enabled, current state is: ${v.state}.`);
  }
}

export function versionName(key: { name: string }, v: { id: number }): string {
  return `${key.name}/cryptoKeyVersions/${v.id}`;
}

/** The wire form of a CryptoKeyVersion (fields the SDK and our provider read). */
export function versionProto(key: { name: string }, v: VersionRec): Record<string, unknown> {
  return {
    name: versionName(key, v),
    state: v.state,
    protectionLevel: 'SOFTWARE',
    algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION',
    createTime: v.createTime,
    generateTime: v.state === 'PENDING_GENERATION' ? null : v.createTime,
  };
}

/** The wire form of a CryptoKey, with its primary version expanded as the real API does. */
export function cryptoKeyProto(key: KeyRec): Record<string, unknown> {
  const primary = key.primaryId === undefined ? undefined : key.versions.get(key.primaryId);
  return {
    name: key.name,
    primary: primary ? versionProto(key, primary) : null,
    purpose: 'ENCRYPT_DECRYPT',
    createTime: key.createTime,
    versionTemplate: { protectionLevel: 'SOFTWARE', algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
    labels: key.labels,
  };
}

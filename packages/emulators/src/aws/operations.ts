/**
 * The TrentService operations the emulator answers, as pure functions of (key store, request body) →
 * response body. Field names, limits and error names follow client-kms 3.1164.0 (`models_0.d.ts`) and
 * the KMS API reference; blobs travel as standard base64, timestamps as epoch seconds.
 */
import { randomBytes } from 'node:crypto';
import { open, parseBlob, seal } from './ciphertext';
import { KmsError, validation } from './errors';
import type { KeyStore, KmsKey } from './key-store';

export type Body = Record<string, unknown>;
type Operation = (store: KeyStore, body: Body) => Body;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function str(body: Body, name: string): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new KmsError('SerializationException', `${name} must be a string.`);
  return v;
}

function required(body: Body, name: string): string {
  const v = str(body, name);
  if (v === undefined || v === '') throw validation(`1 validation error detected: Value null at '${name}' failed to satisfy constraint: Member must not be null`);
  return v;
}

function int(body: Body, name: string, min: number, max: number): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw validation(`1 validation error detected: Value '${String(v)}' at '${name}' failed to satisfy constraint: Member must have value between ${min} and ${max}`);
  }
  return v;
}

function blob(body: Body, name: string, maxBytes: number): Buffer {
  const v = required(body, name);
  if (!BASE64.test(v) || v.length % 4 !== 0) throw new KmsError('SerializationException', `${name} is not valid base64.`);
  const b = Buffer.from(v, 'base64');
  if (b.length < 1 || b.length > maxBytes) {
    throw validation(`1 validation error detected: Value at '${name}' failed to satisfy constraint: Member must have length between 1 and ${maxBytes}`);
  }
  return b;
}

function context(body: Body, name: string): Record<string, string> | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new KmsError('SerializationException', `${name} must be a map of strings to strings.`);
  }
  return v as Record<string, string>;
}

function symmetricOnly(body: Body, name: string): void {
  const alg = str(body, name);
  if (alg !== undefined && alg !== 'SYMMETRIC_DEFAULT') {
    throw new KmsError('InvalidKeyUsageException', `${alg} is not a valid encryption algorithm for a symmetric encryption KMS key.`);
  }
}

/** Resolve a key named by the caller and apply the (simulated) key policy. */
function use(store: KeyStore, ref: string, action: string): KmsKey {
  const key = store.resolve(ref);
  if (key.denied) {
    throw new KmsError('AccessDeniedException', `User: arn:aws:iam::${store.opts.accountId}:user/emulator is not authorized to perform: kms:${action} on resource: ${key.arn} because no resource-based policy allows the kms:${action} action`);
  }
  return key;
}

/** Decrypt side shared by Decrypt and ReEncrypt: the blob names its key and material. */
function decryptBlob(store: KeyStore, ciphertext: Buffer, keyIdArg: string | undefined, ctx: Record<string, string> | undefined, action: string) {
  const parsed = parseBlob(ciphertext);
  // A blob naming no key we hold is a bad blob (tampered, or from elsewhere), not a missing key.
  if (!store.tryResolve(parsed.keyId)) throw new KmsError('InvalidCiphertextException', 'The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.');
  const key = use(store, parsed.keyId, action);
  if (keyIdArg !== undefined && use(store, keyIdArg, action).id !== key.id) {
    throw new KmsError('IncorrectKeyException', 'The key ID in the request does not identify a CMK that can perform this operation.');
  }
  store.requireUsable(key);
  const material = key.materials[parsed.material];
  if (!material) throw new KmsError('InvalidCiphertextException', 'The ciphertext refers to key material that does not exist.');
  return { key, material, plaintext: open(material.key, parsed, ctx) };
}

function encryptWith(store: KeyStore, key: KmsKey, plaintext: Buffer, ctx: Record<string, string> | undefined) {
  store.requireUsable(key);
  const material = key.materials[key.current];
  if (!material) throw new KmsError('KMSInternalException', 'key has no current material');
  return { material, blob: seal(material.key, { keyId: key.id, material: key.current }, plaintext, ctx) };
}

const b64 = (b: Buffer): string => b.toString('base64');

export const OPERATIONS: Readonly<Record<string, Operation>> = {
  CreateKey(store, body) {
    for (const [field, ok] of [['KeySpec', 'SYMMETRIC_DEFAULT'], ['CustomerMasterKeySpec', 'SYMMETRIC_DEFAULT'], ['KeyUsage', 'ENCRYPT_DECRYPT'], ['Origin', 'AWS_KMS']] as const) {
      const v = str(body, field);
      if (v !== undefined && v !== ok) throw new KmsError('UnsupportedOperationException', `The emulator only creates ${ok} keys (${field}=${v}).`);
    }
    return { KeyMetadata: store.metadata(store.create(str(body, 'Description') ?? '')) };
  },

  DescribeKey(store, body) {
    return { KeyMetadata: store.metadata(use(store, required(body, 'KeyId'), 'DescribeKey')) };
  },

  ListKeys(store, body) {
    const limit = int(body, 'Limit', 1, 1000) ?? 100;
    const start = Number(str(body, 'Marker') ?? '0');
    const all = store.list();
    const page = all.slice(start, start + limit);
    const truncated = start + limit < all.length;
    return { Keys: page.map((k) => ({ KeyId: k.id, KeyArn: k.arn })), Truncated: truncated, ...(truncated ? { NextMarker: String(start + limit) } : {}) };
  },

  CreateAlias(store, body) {
    store.createAlias(required(body, 'AliasName'), required(body, 'TargetKeyId'));
    return {};
  },

  UpdateAlias(store, body) {
    store.updateAlias(required(body, 'AliasName'), required(body, 'TargetKeyId'));
    return {};
  },

  Encrypt(store, body) {
    const key = use(store, required(body, 'KeyId'), 'Encrypt');
    symmetricOnly(body, 'EncryptionAlgorithm');
    const { blob: out } = encryptWith(store, key, blob(body, 'Plaintext', 4096), context(body, 'EncryptionContext'));
    return { CiphertextBlob: b64(out), KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
  },

  Decrypt(store, body) {
    symmetricOnly(body, 'EncryptionAlgorithm');
    const { key, material, plaintext } = decryptBlob(store, blob(body, 'CiphertextBlob', 6144), str(body, 'KeyId'), context(body, 'EncryptionContext'), 'Decrypt');
    return { KeyId: key.arn, Plaintext: b64(plaintext), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT', KeyMaterialId: material.id };
  },

  ReEncrypt(store, body) {
    const src = decryptBlob(store, blob(body, 'CiphertextBlob', 6144), str(body, 'SourceKeyId'), context(body, 'SourceEncryptionContext'), 'ReEncryptFrom');
    const dest = use(store, required(body, 'DestinationKeyId'), 'ReEncryptTo');
    const out = encryptWith(store, dest, src.plaintext, context(body, 'DestinationEncryptionContext'));
    src.plaintext.fill(0);
    return {
      CiphertextBlob: b64(out.blob), SourceKeyId: src.key.arn, KeyId: dest.arn,
      SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT', DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      SourceKeyMaterialId: src.material.id, DestinationKeyMaterialId: out.material.id,
    };
  },

  GenerateDataKey(store, body) {
    const key = use(store, required(body, 'KeyId'), 'GenerateDataKey');
    const n = int(body, 'NumberOfBytes', 1, 1024);
    const spec = str(body, 'KeySpec');
    if ((n === undefined) === (spec === undefined)) throw validation('Please specify either number of bytes or key spec.');
    if (spec !== undefined && spec !== 'AES_256' && spec !== 'AES_128') throw validation(`KeySpec ${spec} must be AES_256 or AES_128.`);
    const plaintext = randomBytes(n ?? (spec === 'AES_128' ? 16 : 32));
    const out = encryptWith(store, key, plaintext, context(body, 'EncryptionContext'));
    return { CiphertextBlob: b64(out.blob), Plaintext: b64(plaintext), KeyId: key.arn, KeyMaterialId: out.material.id };
  },

  EnableKey(store, body) {
    const key = use(store, required(body, 'KeyId'), 'EnableKey');
    if (key.state === 'PendingDeletion') store.requireUsable(key);
    key.state = 'Enabled';
    return {};
  },

  DisableKey(store, body) {
    const key = use(store, required(body, 'KeyId'), 'DisableKey');
    if (key.state === 'PendingDeletion') store.requireUsable(key);
    key.state = 'Disabled';
    return {};
  },

  ScheduleKeyDeletion(store, body) {
    const key = use(store, required(body, 'KeyId'), 'ScheduleKeyDeletion');
    const days = int(body, 'PendingWindowInDays', 7, 30) ?? 30;
    if (key.state === 'PendingDeletion') store.requireUsable(key);
    key.state = 'PendingDeletion';
    key.deletionDate = Date.now() / 1000 + days * 86400;
    return { KeyId: key.arn, DeletionDate: key.deletionDate, KeyState: key.state, PendingWindowInDays: days };
  },

  CancelKeyDeletion(store, body) {
    const key = use(store, required(body, 'KeyId'), 'CancelKeyDeletion');
    if (key.state !== 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is not pending deletion.`);
    // KMS leaves a key whose deletion was cancelled Disabled; the owner enables it explicitly.
    key.state = 'Disabled';
    key.deletionDate = undefined;
    return { KeyId: key.arn };
  },

  EnableKeyRotation(store, body) {
    const key = use(store, required(body, 'KeyId'), 'EnableKeyRotation');
    store.requireUsable(key);
    key.rotationPeriodDays = int(body, 'RotationPeriodInDays', 90, 2560) ?? 365;
    key.rotationEnabled = true;
    return {};
  },

  DisableKeyRotation(store, body) {
    const key = use(store, required(body, 'KeyId'), 'DisableKeyRotation');
    store.requireUsable(key);
    key.rotationEnabled = false;
    return {};
  },

  GetKeyRotationStatus(store, body) {
    const key = use(store, required(body, 'KeyId'), 'GetKeyRotationStatus');
    const last = key.materials[key.materials.length - 1]?.created ?? key.created;
    return {
      KeyRotationEnabled: key.rotationEnabled,
      KeyId: key.arn,
      ...(key.rotationEnabled ? { RotationPeriodInDays: key.rotationPeriodDays, NextRotationDate: last + key.rotationPeriodDays * 86400 } : {}),
      ...(key.pendingRotationSince !== undefined ? { OnDemandRotationStartDate: key.pendingRotationSince } : {}),
    };
  },

  RotateKeyOnDemand(store, body) {
    const key = use(store, required(body, 'KeyId'), 'RotateKeyOnDemand');
    store.rotate(key, true);
    return { KeyId: key.id };
  },
};

/**
 * Every name a fault rule may use for the keys a request touches: what the caller sent, plus the key id,
 * key ARN and aliases it resolves to (for Decrypt, the key named inside the blob). Unresolvable names are
 * kept as sent, so a rule can also target a missing key.
 */
export function faultKeyNames(store: KeyStore, body: Body): string | undefined {
  const names = new Set<string>();
  const add = (ref: unknown): void => {
    if (typeof ref !== 'string' || ref === '') return;
    names.add(ref);
    let key: KmsKey | undefined;
    try {
      key = store.tryResolve(ref);
    } catch {
      key = undefined;
    }
    if (!key) return;
    names.add(key.id).add(key.arn);
    for (const a of store.aliasesOf(key)) names.add(a).add(store.aliasArn(a));
  };
  for (const f of ['KeyId', 'TargetKeyId', 'SourceKeyId', 'DestinationKeyId']) add(body[f]);
  const ct = body.CiphertextBlob;
  if (typeof ct === 'string') {
    try {
      add(parseBlob(Buffer.from(ct, 'base64')).keyId);
    } catch {
      // not a blob of ours: the operation itself will say so
    }
  }
  return names.size === 0 ? undefined : [...names].join(' ');
}

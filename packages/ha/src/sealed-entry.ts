/**
 * The L2 entry format. Redis never holds key material in the clear: an entry is the unwrapped payload sealed
 * with AES-256-GCM under the keyring's current cache-sealing key. The AAD binds the tenant, the keyring, the
 * generation and the cache key, so an entry copied under another key, or read for another tenant (even with a
 * forged cache key), fails authentication and is treated as a miss.
 *
 *   u8 version (1) | u8 idLen | id (ascii) | u8 genLen | generation | 12 nonce | sealed | 16 tag
 * The sealing-key id and the generation are public (the generation is in every key_id).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KeyCacheEntryMeta } from '@kekbroker/cache';

const VERSION = 1;
const NONCE = 12;
const TAG = 16;

function aad(cacheKey: string, meta: KeyCacheEntryMeta, header: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`kekbroker-l2/v1\0${meta.tenant}\0${meta.keyring}\0${meta.generation}\0${cacheKey}\0`, 'utf8'), header]);
}

function header(sealingKeyId: string, generationHex: string): Buffer {
  const id = Buffer.from(sealingKeyId, 'ascii');
  const gen = Buffer.from(generationHex, 'hex');
  if (id.length > 255 || gen.length > 255) throw new Error('sealing key id or generation too long');
  return Buffer.concat([Buffer.from([VERSION, id.length]), id, Buffer.from([gen.length]), gen]);
}

/** Seal `plaintext` (lent: read now, not kept) for (cacheKey, meta). */
export function sealEntry(sealingKey: Buffer, sealingKeyId: string, cacheKey: string, meta: KeyCacheEntryMeta, plaintext: Uint8Array): Buffer {
  const h = header(sealingKeyId, meta.generation);
  const nonce = randomBytes(NONCE);
  const c = createCipheriv('aes-256-gcm', sealingKey, nonce);
  c.setAAD(aad(cacheKey, meta, h));
  const sealed = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([h, nonce, sealed, c.getAuthTag()]);
}

export interface EntryHeader { sealingKeyId: string; generation: string; bodyOffset: number }

/** Parse the public header; undefined for anything malformed. */
export function entryHeader(entry: Buffer): EntryHeader | undefined {
  if (entry.length < 3 || entry[0] !== VERSION) return undefined;
  const idLen = entry[1] as number;
  const genAt = 2 + idLen;
  if (entry.length < genAt + 1) return undefined;
  const genLen = entry[genAt] as number;
  const bodyOffset = genAt + 1 + genLen;
  if (entry.length < bodyOffset + NONCE + TAG) return undefined;
  return { sealingKeyId: entry.subarray(2, genAt).toString('ascii'), generation: entry.subarray(genAt + 1, bodyOffset).toString('hex'), bodyOffset };
}

/** Open an entry for (cacheKey, meta); undefined when it does not authenticate (wrong tenant, keyring, key, or tampered). */
export function openEntry(sealingKey: Buffer, cacheKey: string, meta: KeyCacheEntryMeta, entry: Buffer): Buffer | undefined {
  const h = entryHeader(entry);
  if (!h || h.generation !== meta.generation) return undefined;
  const nonce = entry.subarray(h.bodyOffset, h.bodyOffset + NONCE);
  const body = entry.subarray(h.bodyOffset + NONCE, entry.length - TAG);
  try {
    const d = createDecipheriv('aes-256-gcm', sealingKey, nonce);
    d.setAAD(aad(cacheKey, meta, entry.subarray(0, h.bodyOffset)));
    d.setAuthTag(entry.subarray(entry.length - TAG));
    return Buffer.concat([d.update(body), d.final()]);
  } catch {
    return undefined;
  }
}

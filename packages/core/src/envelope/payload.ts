/**
 * The payload layer: the caller's plaintext sealed with AES-256-GCM under a fresh envelope key K. The AAD
 * is the tenant plus the exact header bytes, so the envelope only opens for the tenant it was made for.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KekError } from '../errors';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES } from './format';

export function payloadAad(tenant: string, header: Uint8Array): Buffer {
  const t = Buffer.from(tenant, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(t.length);
  return Buffer.concat([Buffer.from('kekbroker-payload\0', 'ascii'), len, t, header]);
}

export function sealPayload(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): { nonce: Buffer; sealed: Buffer } {
  if (key.length !== KEY_BYTES) throw new KekError('internal', 'envelope key must be 32 bytes');
  const nonce = randomBytes(NONCE_BYTES);
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad);
  const sealed = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return { nonce, sealed };
}

/** Returns the plaintext; throws `corrupt` when authentication fails. The caller zeroes the result. */
export function openPayload(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer {
  if (key.length !== KEY_BYTES) throw new KekError('corrupt', 'envelope key has the wrong length');
  const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const out = d.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([out, d.final()]);
  } catch {
    out.fill(0);
    throw new KekError('corrupt', 'envelope failed authentication: it was tampered with, or belongs to another tenant or keyring');
  } finally {
    out.fill(0);
  }
}

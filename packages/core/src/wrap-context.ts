/**
 * What a wrap is bound to (principle 3): the tenant, the keyring and the envelope version. Providers with
 * native AAD (AWS EncryptionContext, GCP additional_authenticated_data, the local AES-GCM) bind these
 * bytes directly; providers without it (Azure wrapKey) bind a hash of them inside the wrapped plaintext.
 */
import { createHash } from 'node:crypto';
import { needs } from './errors';

export interface WrapContext {
  readonly tenant: string;
  readonly keyring: string;
  readonly envelopeVersion: number;
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Tenants, keyrings and provider ids share one grammar: DNS-label-like, 1..63 chars. */
export function isValidName(name: string): boolean {
  return NAME.test(name);
}

export function assertWrapContext(ctx: WrapContext): void {
  needs(isValidName(ctx.tenant), 'tenant name must be a DNS label (a-z, 0-9, -; 1..63 characters)');
  needs(isValidName(ctx.keyring), 'keyring name must be a DNS label (a-z, 0-9, -; 1..63 characters)');
  needs(Number.isInteger(ctx.envelopeVersion) && ctx.envelopeVersion > 0 && ctx.envelopeVersion < 256, 'bad envelope version');
}

/**
 * Canonical AAD bytes. The names cannot contain NUL, so NUL-separated fields cannot be confused.
 * Changing this function breaks every existing wrap: it is pinned by golden vectors.
 */
export function aadBytes(ctx: WrapContext): Buffer {
  assertWrapContext(ctx);
  return Buffer.from(`kekbroker\0v=${ctx.envelopeVersion}\0tenant=${ctx.tenant}\0keyring=${ctx.keyring}`, 'utf8');
}

/** AWS KMS EncryptionContext form of the same binding (shows up in CloudTrail, which helps audits). */
export function encryptionContext(ctx: WrapContext): Record<string, string> {
  assertWrapContext(ctx);
  return {
    'kekbroker:v': String(ctx.envelopeVersion),
    'kekbroker:tenant': ctx.tenant,
    'kekbroker:keyring': ctx.keyring,
  };
}

/** SHA-256 of the AAD, for providers that bind by wrapping `plaintext || aadDigest(ctx)`. */
export function aadDigest(ctx: WrapContext): Buffer {
  return createHash('sha256').update(aadBytes(ctx)).digest();
}

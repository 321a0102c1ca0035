/**
 * The rules kube-apiserver applies to a plugin's answers (k8s.io/apiserver kmsv2/envelope.go), checked
 * here before we answer so that a bad answer becomes our clear error, not the apiserver's confusing one.
 */
import { KekError, parseKeyId } from '@kekbroker/core';

export const KEY_ID_MAX_BYTES = 1024;
export const CIPHERTEXT_MAX_BYTES = 1024;
export const ANNOTATIONS_MAX_BYTES = 32 * 1024;
/** The apiserver sends a 32-byte seed; we accept up to 1 KiB so a future larger seed still works. */
export const PLAINTEXT_MAX_BYTES = 1024;

export const VERSION_ANNOTATION = 'version.kekbroker.io';
export const ENVELOPE_ANNOTATION_VALUE = Buffer.from('1');

// validation.IsFullyQualifiedDomainName: at least two DNS-1123 labels, lowercase, total <= 253.
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export function isFqdn(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.length >= 2 && labels.every((l) => l.length <= 63 && LABEL.test(l));
}

/**
 * The largest plaintext whose envelope still fits the apiserver's 1 KiB ciphertext. An envelope adds a
 * fixed number of bytes to its plaintext for a given key_id (same generation: same providers, version
 * refs and wrapped-key sizes), so the shim learns that overhead from every Encrypt answer and refuses a
 * larger plaintext before any broker or KMS call. Until it has seen one answer under the current key_id
 * it uses the smallest overhead the envelope format allows for this keyring (one wrap of one byte).
 */
export class EnvelopeBudget {
  private readonly overheadByKeyId = new Map<string, number>();
  readonly floor: number;

  constructor(keyring: string) {
    // magic 2, version 2, keyring 1+n, generation 8, wrap count 1, one wrap (id 1+1, ref 2+1, bytes 2+1), nonce 12, length 4, tag 16
    this.floor = 2 + 2 + 1 + Buffer.byteLength(keyring) + 8 + 1 + 2 + 3 + 3 + 12 + 4 + 16;
  }

  overhead(keyId: string | undefined): { bytes: number; learned: boolean } {
    const learned = keyId !== undefined ? this.overheadByKeyId.get(keyId) : undefined;
    return learned !== undefined ? { bytes: learned, learned: true } : { bytes: this.floor, learned: false };
  }

  maxPlaintext(keyId: string | undefined): number {
    return Math.min(PLAINTEXT_MAX_BYTES, CIPHERTEXT_MAX_BYTES - this.overhead(keyId).bytes);
  }

  learn(keyId: string, plaintextBytes: number, ciphertextBytes: number): void {
    const o = ciphertextBytes - plaintextBytes;
    if (o <= 0) return;
    // A failover can drop a wrap; keep the largest overhead seen so the limit never grows too generous.
    this.overheadByKeyId.set(keyId, Math.max(o, this.overheadByKeyId.get(keyId) ?? 0));
    if (this.overheadByKeyId.size > 16) this.overheadByKeyId.delete(this.overheadByKeyId.keys().next().value as string);
  }

  /** Refuse a plaintext too large for the keyring's envelope: INVALID_ARGUMENT, before any call. */
  check(keyId: string | undefined, plaintextBytes: number): void {
    const max = this.maxPlaintext(keyId);
    if (plaintextBytes > max) throw this.tooLarge(plaintextBytes, max);
  }

  tooLarge(plaintextBytes: number, max: number): KekError {
    return new KekError('invalid-input', `plaintext is ${plaintextBytes} bytes; this keyring's envelope allows at most ${max} (the apiserver refuses ciphertexts over ${CIPHERTEXT_MAX_BYTES} bytes)`);
  }
}

export function checkKeyId(keyId: string, what: string): void {
  const n = Buffer.byteLength(keyId, 'utf8');
  if (n === 0) throw new KekError('internal', `${what} key_id is empty`);
  if (n > KEY_ID_MAX_BYTES) throw new KekError('internal', `${what} key_id is ${n} bytes; the apiserver refuses more than ${KEY_ID_MAX_BYTES}`);
}

export function checkEncryptAnswer(ciphertext: Uint8Array, keyId: string, annotations: Record<string, Buffer>): void {
  if (ciphertext.length === 0) throw new KekError('internal', 'broker returned an empty ciphertext');
  if (ciphertext.length > CIPHERTEXT_MAX_BYTES) {
    throw new KekError('internal', `ciphertext is ${ciphertext.length} bytes; the apiserver refuses more than ${CIPHERTEXT_MAX_BYTES} (too many or too large provider wraps in this keyring)`);
  }
  checkKeyId(keyId, 'Encrypt');
  let total = 0;
  for (const [k, v] of Object.entries(annotations)) {
    if (!isFqdn(k)) throw new KekError('internal', `annotation key "${k}" is not a fully qualified domain name`);
    total += k.length + v.length;
  }
  if (total > ANNOTATIONS_MAX_BYTES) throw new KekError('internal', `annotations are ${total} bytes; the limit is ${ANNOTATIONS_MAX_BYTES}`);
}

/** Decrypt input: understand key_id and our annotations before asking the broker to unwrap anything. */
export function checkDecryptRequest(keyring: string, ciphertext: Uint8Array, keyId: string, annotations: Record<string, Buffer>): void {
  if (ciphertext.length === 0) throw new KekError('invalid-input', 'ciphertext is empty');
  if (ciphertext.length > CIPHERTEXT_MAX_BYTES) throw new KekError('invalid-input', `ciphertext is ${ciphertext.length} bytes; kekbroker never produces more than ${CIPHERTEXT_MAX_BYTES}`);
  if (keyId === '') throw new KekError('invalid-input', 'key_id is empty');
  if (Buffer.byteLength(keyId) > KEY_ID_MAX_BYTES) throw new KekError('invalid-input', `key_id is longer than ${KEY_ID_MAX_BYTES} bytes`);
  const parsed = parseKeyId(keyId);
  if (!parsed) throw new KekError('invalid-input', 'key_id was not issued by kekbroker (expected kekbroker/<keyring>/<16 hex>)');
  if (parsed.keyring !== keyring) throw new KekError('invalid-input', `key_id belongs to keyring "${parsed.keyring}"; this shim serves "${keyring}"`);
  for (const [k, v] of Object.entries(annotations)) {
    if (k === VERSION_ANNOTATION) {
      if (!Buffer.from(v).equals(ENVELOPE_ANNOTATION_VALUE)) throw new KekError('invalid-input', `annotation ${VERSION_ANNOTATION} has an unsupported value`);
    } else if (k.endsWith('.kekbroker.io')) {
      throw new KekError('invalid-input', `unknown kekbroker annotation "${k}"`);
    }
  }
}

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

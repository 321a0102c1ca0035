/**
 * JSON schemas of the transit API: fastify validates every body with them, and @fastify/swagger turns the
 * same objects into the OpenAPI document. Base64 fields are checked where they are decoded (one decode, a
 * Vault-style message); sizes and types are checked here.
 */
export interface SchemaLimits {
  maxPlaintextBytes: number;
  maxBatchItems: number;
}

const b64Len = (bytes: number): number => Math.ceil(bytes / 3) * 4;
const SMALL = 64 * 1024;

export function schemas(l: SchemaLimits) {
  const plaintext = { type: 'string', maxLength: b64Len(l.maxPlaintextBytes), description: 'base64 plaintext' } as const;
  const context = { type: 'string', maxLength: b64Len(SMALL), description: 'base64 derivation context (derived keys)' } as const;
  const associatedData = { type: 'string', maxLength: b64Len(SMALL), description: 'base64 AEAD associated data' } as const;
  const keyVersion = { type: 'integer', minimum: 0, maximum: 2 ** 31, description: '0 (or absent) means the latest version' } as const;
  // The ciphertext carries its data-key envelope (up to 8 provider wraps of up to 4 KiB) besides the payload.
  const ciphertext = { type: 'string', maxLength: b64Len(l.maxPlaintextBytes + 48 * 1024) + 32, description: 'vault:v<N>:<base64>' } as const;
  const reference = { type: 'string', maxLength: 1024, description: 'echoed back in the matching batch result' } as const;
  const partial = { type: 'integer', minimum: 200, maximum: 599, description: 'status to answer when some batch items failed and some succeeded' } as const;
  const batch = (item: object) => ({ type: 'array', minItems: 0, maxItems: l.maxBatchItems, items: item }) as const;

  const encryptItem = { type: 'object', properties: { plaintext, context, key_version: keyVersion, associated_data: associatedData, reference } } as const;
  const decryptItem = { type: 'object', properties: { ciphertext, context, associated_data: associatedData, reference } } as const;
  const rewrapItem = { type: 'object', properties: { ciphertext, context, key_version: keyVersion, associated_data: associatedData, reference } } as const;
  const name = { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 128 } } } as const;

  return {
    name,
    datakeyParams: {
      type: 'object', required: ['type', 'name'],
      properties: { type: { type: 'string', description: '"plaintext" or "wrapped"' }, name: { type: 'string', minLength: 1, maxLength: 128 } },
    },
    encrypt: { type: 'object', properties: { ...encryptItem.properties, batch_input: batch(encryptItem), partial_failure_response_code: partial, type: { type: 'string' }, convergent_encryption: { type: 'boolean' } } },
    decrypt: { type: 'object', properties: { ...decryptItem.properties, batch_input: batch(decryptItem), partial_failure_response_code: partial } },
    rewrap: { type: 'object', properties: { ...rewrapItem.properties, batch_input: batch(rewrapItem), partial_failure_response_code: partial } },
    datakey: { type: 'object', properties: { context, key_version: keyVersion, bits: { type: 'integer', description: '128, 256 (default) or 512' }, nonce: { type: 'string', maxLength: 64 } } },
    keyConfig: {
      type: 'object',
      properties: {
        min_decryption_version: { type: 'integer', minimum: 0, maximum: 2 ** 31 },
        min_encryption_version: { type: 'integer', minimum: 0, maximum: 2 ** 31 },
        deletion_allowed: { type: 'boolean' },
      },
    },
    listQuery: { type: 'object', properties: { list: { type: 'string' } } },
    /** Vault's response envelope; `data` is free-form here and described per operation in the docs. */
    response: {
      type: 'object',
      properties: {
        request_id: { type: 'string' }, lease_id: { type: 'string' }, renewable: { type: 'boolean' }, lease_duration: { type: 'integer' },
        data: { type: 'object', additionalProperties: true }, wrap_info: { type: 'null' }, warnings: { type: ['array', 'null'], items: { type: 'string' } },
        auth: { type: 'null' }, mount_type: { type: 'string' },
      },
    },
    errors: { type: 'object', properties: { errors: { type: 'array', items: { type: 'string' } } } },
  };
}

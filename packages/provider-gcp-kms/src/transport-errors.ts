/**
 * Errors the provider raises itself below the KekError level, so that retry.ts and classify-error.ts can
 * recognise them without string matching.
 */

/** Data damaged between us and the KMS (either direction). Never the caller's fault; retried. */
export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
}

/** The SDK client could not be built: credentials could not be loaded, or the channel not created. */
export class ClientInitError extends Error {
  override readonly name = 'ClientInitError';
}

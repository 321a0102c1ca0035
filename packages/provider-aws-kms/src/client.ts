/**
 * The few AWS KMS calls the provider makes, as a structural interface. `sdk-client.ts` implements it with
 * @aws-sdk/client-kms (the only file that imports the SDK); tests may implement it with a plain object.
 * Implementations throw the SDK's own errors; `classify-error.ts` turns them into KekErrors.
 */

/** What DescribeKey tells us about a key; the provider needs no more. */
export interface KmsKeyInfo {
  /** Key ARN (what an alias or key id resolves to). */
  readonly arn: string;
  /** `Enabled`, `Disabled`, `PendingDeletion`, `PendingImport`, `Unavailable`, … */
  readonly keyState: string;
  readonly enabled: boolean;
  /** Current key material (symmetric keys of origin AWS_KMS or EXTERNAL); changes on every rotation. */
  readonly keyMaterialId: string | undefined;
  /** `ENCRYPT_DECRYPT` for keys we can use. */
  readonly keyUsage: string | undefined;
  /** `SYMMETRIC_DEFAULT` for keys we can use. */
  readonly keySpec: string | undefined;
}

export interface KmsApi {
  encrypt(keyId: string, plaintext: Uint8Array, context: Record<string, string>, signal: AbortSignal): Promise<{ ciphertext: Uint8Array; keyArn: string }>;
  /** `keyId` is always passed: KMS then refuses a blob made by another key (IncorrectKeyException). */
  decrypt(keyId: string, ciphertext: Uint8Array, context: Record<string, string>, signal: AbortSignal): Promise<{ plaintext: Uint8Array; keyArn: string; keyMaterialId: string | undefined }>;
  describeKey(keyId: string, signal: AbortSignal): Promise<KmsKeyInfo>;
  /** Starts a rotation; KMS completes it asynchronously (watch `keyMaterialId`). Never retried. */
  rotateKeyOnDemand(keyId: string, signal: AbortSignal): Promise<void>;
  close(): void;
}

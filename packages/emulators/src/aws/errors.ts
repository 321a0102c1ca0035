/**
 * AWS KMS errors as they travel on the wire (awsJson1_1): an HTTP status plus
 * `{"__type": "<Name>", "message": "..."}`. The SDK resolves the error class from `__type`, so the names
 * below must be the modelled KMS exception names (client-kms `schemas_0.js`), and the statuses must be
 * the modelled ones: the SDK's retry logic keys off both (5xx and throttling names are retried).
 */

/** Modelled HTTP status per error name. ThrottlingException is not modelled by KMS; real KMS sends 400. */
export const KMS_ERROR_STATUS: Readonly<Record<string, number>> = {
  AccessDeniedException: 400,
  AlreadyExistsException: 400,
  ConflictException: 409,
  DependencyTimeoutException: 503,
  DisabledException: 409,
  IncorrectKeyException: 400,
  InvalidArnException: 400,
  InvalidCiphertextException: 400,
  InvalidKeyUsageException: 400,
  KMSInternalException: 500,
  KMSInvalidStateException: 409,
  KeyUnavailableException: 500,
  LimitExceededException: 400,
  NotFoundException: 400,
  SerializationException: 400,
  ThrottlingException: 400,
  UnknownOperationException: 400,
  UnsupportedOperationException: 400,
  ValidationException: 400,
};

export class KmsError extends Error {
  readonly type: string;
  readonly status: number;

  constructor(type: string, message: string, status?: number) {
    super(message);
    this.type = type;
    this.status = status ?? KMS_ERROR_STATUS[type] ?? 400;
  }
}

export const notFound = (what: string): KmsError => new KmsError('NotFoundException', `${what} is not found.`);

export const validation = (message: string): KmsError => new KmsError('ValidationException', message);

/** The text real KMS sends with a throttle (AWS knowledge-center article on ThrottlingException). */
export const THROTTLE_MESSAGE = 'You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.';

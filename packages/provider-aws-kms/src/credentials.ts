/**
 * Static AWS credentials referenced from config: environment variable names, or a JSON file (a mounted
 * Kubernetes Secret). Config never holds the secret itself. Without either, the SDK's default chain runs
 * (see docs/providers/aws-kms.md); tests must always use one of these so no metadata-server probe happens.
 */
import { readFile } from 'node:fs/promises';
import { KekError } from '@kekbroker/core';

export interface StaticCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** The SDK asks again shortly before this; lets a rotated Secret file be picked up. */
  expiration?: Date;
}

export type CredentialsProvider = () => Promise<StaticCredentials>;

export type AwsCredentialsConfig =
  | { source: 'default'; profile?: string }
  | { source: 'env'; accessKeyIdEnv: string; secretAccessKeyEnv: string; sessionTokenEnv?: string }
  | { source: 'file'; file: string };

/** Expiry stamped on file credentials; the SDK refreshes 5 min before it, so the file is re-read every ~10 min. */
const FILE_REFRESH_MS = 15 * 60_000;

/** Read the variables now, so that a missing one stops the broker at start, not at the first wrap. */
export function envCredentials(providerId: string, c: { accessKeyIdEnv: string; secretAccessKeyEnv: string; sessionTokenEnv?: string }): CredentialsProvider {
  const get = (name: string, field: string): string => {
    const v = process.env[name];
    if (v === undefined || v === '') {
      throw new KekError('invalid-input', `providers.${providerId}.credentials.${field} names environment variable ${name}, which is not set`, { provider: providerId });
    }
    return v;
  };
  const creds: StaticCredentials = { accessKeyId: get(c.accessKeyIdEnv, 'accessKeyIdEnv'), secretAccessKey: get(c.secretAccessKeyEnv, 'secretAccessKeyEnv') };
  if (c.sessionTokenEnv !== undefined) creds.sessionToken = get(c.sessionTokenEnv, 'sessionTokenEnv');
  return async () => ({ ...creds });
}

/** File: `{"accessKeyId": "...", "secretAccessKey": "...", "sessionToken": "..."}` (sessionToken optional). */
export function fileCredentials(providerId: string, file: string): CredentialsProvider {
  const refuse = (why: string, cause?: unknown): KekError =>
    new KekError('permission-denied', `cannot use AWS credentials file ${file} of provider ${providerId}: ${why}`, { provider: providerId, cause });
  return async () => {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, 'utf8'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw refuse(code !== undefined ? `cannot read it (${code})` : 'it is not JSON', e);
    }
    const f = raw as Partial<Record<'accessKeyId' | 'secretAccessKey' | 'sessionToken', unknown>>;
    if (typeof f !== 'object' || f === null || typeof f.accessKeyId !== 'string' || typeof f.secretAccessKey !== 'string' || f.accessKeyId === '' || f.secretAccessKey === '') {
      throw refuse('it must hold non-empty "accessKeyId" and "secretAccessKey" strings');
    }
    if (f.sessionToken !== undefined && typeof f.sessionToken !== 'string') throw refuse('"sessionToken" must be a string');
    return {
      accessKeyId: f.accessKeyId,
      secretAccessKey: f.secretAccessKey,
      ...(typeof f.sessionToken === 'string' ? { sessionToken: f.sessionToken } : {}),
      expiration: new Date(Date.now() + FILE_REFRESH_MS),
    };
  };
}

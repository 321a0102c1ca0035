/**
 * Version refs name the exact key version that wrapped a blob: `azure:<vault host>/keys/<name>/<version>`.
 * The host is the vault's DNS name without port or scheme, so the ref is the same whichever URL form
 * reaches the vault (and stable across emulator restarts on new ports). Key Vault versions are random
 * 128-bit ids, so a re-created key with the same name never reuses a ref.
 */
import { KekError, MAX_VERSION_REF_BYTES } from '@kekbroker/core';

export interface ParsedRef {
  host: string;
  name: string;
  version: string;
}

const REF = /^azure:([a-z0-9.-]{1,253})\/keys\/([0-9A-Za-z-]{1,127})\/([0-9A-Za-z]{1,64})$/;

export function formatRef(host: string, name: string, version: string): string {
  const ref = `azure:${host.toLowerCase()}/keys/${name}/${version}`;
  if (!REF.test(ref) || Buffer.byteLength(ref) > MAX_VERSION_REF_BYTES) {
    throw new KekError('internal', `cannot form a version ref from vault host ${host}, key ${name}, version ${version}`);
  }
  return ref;
}

export function parseRef(ref: string): ParsedRef | undefined {
  const m = REF.exec(ref);
  if (!m || m[1] === undefined || m[2] === undefined || m[3] === undefined) return undefined;
  return { host: m[1], name: m[2], version: m[3] };
}

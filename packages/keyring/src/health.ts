/**
 * Per-provider health, learned from real traffic and from periodic probes, so Status is answered from
 * state and never costs a KMS call per poll. Only availability errors (those that count against a
 * breaker) mark a provider down: a caller's tampered ciphertext says nothing about the KMS.
 */
import { isKekError, type ErrorCode } from '@kekbroker/core';

export interface ProviderHealth {
  up: boolean;
  /** Public reason for the last state change ("ok", or an error code and message). */
  reason: string;
  lastCode: ErrorCode | undefined;
  changedAt: number;
}

export class HealthBook {
  private readonly map = new Map<string, ProviderHealth>();

  constructor(ids: readonly string[]) {
    for (const id of ids) this.map.set(id, { up: true, reason: 'ok', lastCode: undefined, changedAt: Date.now() });
  }

  get(id: string): ProviderHealth {
    const h = this.map.get(id);
    if (!h) throw new Error(`unknown provider ${id}`);
    return h;
  }

  /** Returns true when the provider's up/down state changed. */
  success(id: string): boolean {
    const h = this.get(id);
    if (h.up) return false;
    this.map.set(id, { up: true, reason: 'ok', lastCode: undefined, changedAt: Date.now() });
    return true;
  }

  /** Returns true when the provider's up/down state changed. */
  failure(id: string, e: unknown): boolean {
    if (!isKekError(e) || !e.countsAgainstBreaker) return false;
    const h = this.get(id);
    const reason = `${e.code}: ${e.message}`;
    this.map.set(id, { up: false, reason, lastCode: e.code, changedAt: h.up ? Date.now() : h.changedAt });
    return h.up;
  }
}

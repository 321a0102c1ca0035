/**
 * Sealing and opening envelopes across a keyring's providers, within the caller's deadline.
 *
 * Seal: a fresh K is wrapped by every provider in parallel. The acting active gets most of the remaining
 * time; passives get a bounded share (half), after which a passive still working is left out of the envelope
 * (counted as dropped) instead of making the caller wait longer; a slow passive's timeouts soon open its
 * breaker, and from then on it costs nothing. Each wrap is verified (unwrapped once and compared with K) so a provider returning bad bytes
 * never silently costs the envelope a cloud. An envelope with fewer wraps than providers is "degraded".
 *
 * Open: the envelope's wraps are tried in the order given (acting active, healthy, then the rest), each with
 * a share of the remaining time so a slow provider leaves time for the next. A provider whose K fails the
 * payload's authentication while another provider's K opens it is lying: it is reported to its breaker.
 *
 * K ownership (core/secrets.ts): sealEnvelope owns K. It is zeroed only once every provider call that got it
 * has settled AND the payload is sealed: a dropped passive's SDK call may still be reading K.
 */
import { randomBytes } from 'node:crypto';
import {
  ENVELOPE_VERSION, KEY_BYTES, KekError, constantTimeEqual, encodeEnvelope, encodeHeader, openPayload, payloadAad,
  sealPayload, throwIfAborted, toKekError, zeroize,
  type EnvelopeWrap, type KekProvider, type WrapContext, type WrappedKey, type decodeEnvelope,
} from '@kekbroker/core';
import { remainingMs, type ProviderGuard } from '@kekbroker/resilience';
import type { KeyringEvent } from './keyring';

/** Share of the remaining deadline the acting active's wrap (and verify) may use. */
export const ACTIVE_SHARE = 0.9;
/** Share a passive may use at most. */
export const PASSIVE_SHARE = 0.5;
/** A passive still running this long after its share ended (it ignores its abort signal) is left behind. */
export const PASSIVE_GRACE_MS = 50;

export interface SealPolicy {
  minWraps: number;
  verify: boolean;
  defaultDeadlineMs: number;
}

type CallOp = 'wrap' | 'unwrap' | 'verify';
type Call = <T>(p: KekProvider, op: CallOp, fn: (s: AbortSignal) => Promise<T>, signal: AbortSignal, budgetMs: number) => Promise<T>;

interface Common {
  keyring: string;
  tenant: string;
  ctx: WrapContext;
  signal: AbortSignal;
  policy: SealPolicy;
  call: Call;
  guard: (id: string) => ProviderGuard;
  event: (e: KeyringEvent) => void;
}

export interface SealArgs extends Common {
  plaintext: Uint8Array;
  providers: readonly KekProvider[];
  acting: string;
  generation: () => Buffer;
  versionMoved: (wraps: EnvelopeWrap[]) => boolean;
  refresh: (s: AbortSignal) => Promise<void>;
}

function badAnswer(a: Common, id: string, what: string): KekError {
  const reason = `provider ${id} ${what}`;
  a.guard(id).reportBadAnswer(reason);
  a.event({ type: 'bad-answer', keyring: a.keyring, provider: id, reason });
  return new KekError('corrupt', reason, { provider: id });
}

/** Wrap K with one provider, then (policy.verify) unwrap it once and compare. */
async function wrapOne(a: SealArgs, p: KekProvider, k: Buffer, budgetMs: number): Promise<EnvelopeWrap> {
  const until = performance.now() + budgetMs;
  const w: WrappedKey = await a.call(p, 'wrap', (s) => p.wrap(k, a.ctx, s), a.signal, budgetMs);
  if (a.policy.verify) {
    let back: Buffer | undefined;
    try {
      back = await a.call(p, 'verify', (s) => p.unwrap(w, a.ctx, s), a.signal, until - performance.now());
    } catch (e) {
      if (toKekError(e).code === 'corrupt') throw badAnswer(a, p.id, 'returned a wrap it cannot unwrap; left out of the envelope');
      throw e;
    }
    const same = constantTimeEqual(back, k);
    zeroize(back);
    if (!same) throw badAnswer(a, p.id, 'returned a wrap that does not unwrap to the key it was given; left out of the envelope');
  }
  return { providerId: p.id, keyVersionRef: w.keyVersionRef, wrapped: w.wrapped };
}

export async function sealEnvelope(a: SealArgs): Promise<{ ciphertext: Buffer; generation: Buffer }> {
  const k = randomBytes(KEY_BYTES);
  let sealingDone!: () => void;
  const sealing = new Promise<void>((r) => (sealingDone = r));
  const t0 = performance.now();
  const remaining = remainingMs(a.signal, a.policy.defaultDeadlineMs);
  const outcome: Array<PromiseSettledResult<EnvelopeWrap> | undefined> = a.providers.map(() => undefined);
  const attempts = a.providers.map((p, i) =>
    wrapOne(a, p, k, remaining * (p.id === a.acting ? ACTIVE_SHARE : PASSIVE_SHARE)).then(
      (value) => (outcome[i] = { status: 'fulfilled', value }),
      (reason: unknown) => (outcome[i] = { status: 'rejected', reason }),
    ),
  );
  const all = Promise.all(attempts);
  void Promise.all([all, sealing]).then(() => zeroize(k));
  try {
    const actingIdx = Math.max(0, a.providers.findIndex((p) => p.id === a.acting));
    await attempts[actingIdx];
    const active = outcome[actingIdx] as PromiseSettledResult<EnvelopeWrap>;
    if (active.status === 'rejected') {
      const err = toKekError(active.reason);
      // Refused (revoked key, missing grant, bad input): fail loudly; never fail over around a kill switch.
      if (!err.countsAgainstBreaker && err.code !== 'corrupt') throw err;
      await all; // the active is down: wait for the passives (each bounded by its own share)
    } else {
      // Passives end at their own share (their signal aborts the SDK call); the timer only guards against a
      // provider that ignores its signal: past it, the wrap is dropped and the caller answered without it.
      const left = remaining * PASSIVE_SHARE - (performance.now() - t0) + PASSIVE_GRACE_MS;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise((r) => (timer = setTimeout(r, Math.max(0, left))))]);
      clearTimeout(timer);
    }
    const wraps: EnvelopeWrap[] = [];
    const missing: string[] = [];
    let firstError: unknown;
    a.providers.forEach((p, i) => {
      const o = outcome[i];
      if (o?.status === 'fulfilled') {
        wraps.push(o.value);
        return;
      }
      missing.push(p.id);
      if (!o) a.event({ type: 'passive-dropped', keyring: a.keyring, provider: p.id, reason: `still running ${Math.round(performance.now() - t0)} ms after the wrap started` });
      else {
        firstError ??= o.reason;
        if (p.id !== a.acting && toKekError(o.reason).code === 'timeout') a.event({ type: 'passive-dropped', keyring: a.keyring, provider: p.id, reason: 'no answer within its share of the deadline' });
      }
    });
    if (wraps.length === 0 || wraps.length < a.policy.minWraps) {
      throw new KekError('unavailable', `keyring ${a.keyring}: only ${wraps.length} provider(s) wrapped the key, minWraps is ${a.policy.minWraps}${firstError ? ` (${toKekError(firstError).message})` : ''}`, { cause: firstError });
    }
    // A provider rotated behind our back (console, another replica): its wrap names a version we did not
    // describe. Re-read versions so the envelope's generation (and the key_id we return) are true.
    if (a.versionMoved(wraps)) await a.refresh(a.signal);
    throwIfAborted(a.signal, 'wrap');
    const generation = a.generation();
    if (missing.length > 0) a.event({ type: 'degraded', keyring: a.keyring, missing, generation: generation.toString('hex') });
    const header = encodeHeader({ version: ENVELOPE_VERSION, keyring: a.keyring, generation, wraps });
    const { nonce, sealed } = sealPayload(k, a.plaintext, payloadAad(a.tenant, header));
    return { ciphertext: encodeEnvelope({ version: ENVELOPE_VERSION, keyring: a.keyring, generation, wraps, nonce, sealed }), generation };
  } finally {
    sealingDone();
  }
}

export interface OpenArgs extends Common {
  env: ReturnType<typeof decodeEnvelope>;
  /** The envelope's wraps this keyring knows, in the order to try them. */
  providers: ReturnType<typeof decodeEnvelope>['wraps'];
  provider: (id: string) => KekProvider;
}

export async function openEnvelope(a: OpenArgs): Promise<Buffer> {
  if (a.providers.length === 0) throw new KekError('not-found', `no provider of keyring ${a.keyring} wrapped this envelope`);
  const errors: KekError[] = [];
  const liars: string[] = [];
  for (let i = 0; i < a.providers.length; i++) {
    const left = remainingMs(a.signal, a.policy.defaultDeadlineMs);
    if (left <= 0) break;
    const w = a.providers[i] as (typeof a.providers)[number];
    const p = a.provider(w.providerId);
    // Leave time for the next wrap: a slow provider must not eat the whole deadline.
    const budget = i === a.providers.length - 1 ? left : left / 2;
    let k: Buffer | undefined;
    try {
      k = await a.call(p, 'unwrap', (s) => p.unwrap(w, a.ctx, s), a.signal, budget);
      const plaintext = openPayload(k, a.env.nonce, a.env.sealed, payloadAad(a.tenant, a.env.header));
      // Another provider's K opened it, so those whose K did not returned a wrong key.
      for (const id of liars) badAnswer(a, id, 'returned a key that fails the payload authentication of an envelope another provider opened');
      return plaintext;
    } catch (e) {
      const err = toKekError(e);
      // The payload failed authentication under K: tampered, not this tenant's, or the provider lied. Try the
      // others before answering: only if one of them opens it do we know who lied.
      if (k && err.code === 'corrupt') liars.push(p.id);
      errors.push(err);
    } finally {
      zeroize(k);
    }
  }
  if (errors.length === 0) throw new KekError('timeout', 'unwrap abandoned: deadline exceeded or caller cancelled');
  throw pickError(errors);
}

/** Prefer the error that tells the caller most: their own mistake first, then availability. */
function pickError(errors: KekError[]): KekError {
  const order = ['corrupt', 'invalid-input', 'permission-denied', 'not-found', 'throttled', 'unavailable', 'timeout', 'internal'];
  const sorted = [...errors].sort((a, b) => order.indexOf(a.code) - order.indexOf(b.code));
  return sorted[0] ?? new KekError('internal', 'unwrap failed');
}

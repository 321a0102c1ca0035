/**
 * Deadlines that know how much time is left. An AbortSignal says only "fired or not"; a keyring that splits
 * the caller's remaining time between providers (a passive gets a bounded share, an unwrap leaves time for
 * the next wrap to try) needs the instant too. Signals made here carry it; `remainingMs` reads it back.
 */
import { deadlineSignal } from '@kekbroker/core';

const deadlines = new WeakMap<AbortSignal, number>();

/** A signal that fires in `ms`, or with `parent`, whichever is first; it remembers its deadline. */
export function boundedSignal(ms: number, parent?: AbortSignal): AbortSignal {
  const parentLeft = parent ? remainingMs(parent) : Infinity;
  const budget = Math.max(0, Math.min(ms, parentLeft));
  if (!Number.isFinite(budget)) return parent ?? new AbortController().signal;
  // The parent's own deadline comes first: it is the answer, and a timer signal (tens of µs) is saved.
  if (parent && budget >= parentLeft) return parent;
  const s = deadlineSignal(Math.ceil(budget), parent);
  deadlines.set(s, performance.now() + budget);
  return s;
}

/** Milliseconds left before `signal`'s deadline; `fallbackMs` for a signal made elsewhere (0 once fired). */
export function remainingMs(signal: AbortSignal, fallbackMs = Infinity): number {
  if (signal.aborted) return 0;
  const at = deadlines.get(signal);
  return at === undefined ? fallbackMs : Math.max(0, at - performance.now());
}

/** Deadlines travel as AbortSignals from the caller (gRPC or HTTP) down to every SDK call. */
import { KekError } from './errors';

/** A signal that fires at `ms` from now or when `parent` fires, whichever is first. */
export function deadlineSignal(ms: number, parent?: AbortSignal): AbortSignal {
  const timer = AbortSignal.timeout(Math.max(0, ms));
  return parent ? AbortSignal.any([parent, timer]) : timer;
}

/**
 * A deadline signal, or a function that makes one. A cache hit answers without ever needing a deadline, and
 * making one (`AbortSignal.timeout` + `AbortSignal.any`) was ~8% of the broker's CPU on the warm path, so
 * the broker hands a maker down and only a miss calls it.
 */
export type SignalSource = AbortSignal | (() => AbortSignal);

/** The signal of `source`, made now if it is a maker. */
export function signalOf(source: SignalSource): AbortSignal {
  return typeof source === 'function' ? source() : source;
}

/** Throw `timeout` if the signal already fired; call before each expensive step. */
export function throwIfAborted(signal: AbortSignal, what = 'operation'): void {
  if (signal.aborted) throw new KekError('timeout', `${what} abandoned: deadline exceeded or caller cancelled`);
}

/** Race a promise against a signal; the promise is not cancelled, only no longer awaited. */
export async function raceSignal<T>(p: Promise<T>, signal: AbortSignal, what = 'operation'): Promise<T> {
  throwIfAborted(signal, what);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new KekError('timeout', `${what} abandoned: deadline exceeded or caller cancelled`));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([p, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

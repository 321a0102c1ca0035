/** Helpers for buffers that hold key material (principle 5: zero them when dropped). */
import { timingSafeEqual } from 'node:crypto';

export function zeroize(...buffers: Array<Uint8Array | undefined | null>): void {
  for (const b of buffers) b?.fill(0);
}

/** Constant-time equality for digests and tags; false (not a throw) on length mismatch. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

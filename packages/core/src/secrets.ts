/**
 * Key material: who owns a buffer, and when it may be zeroed (principle 5). This is the one place the rule is
 * written; every `zeroize` in the repository follows it.
 *
 * 1. One owner. A buffer holding a key or a plaintext has exactly one owner: the code that allocated it, or
 *    received it as a return value or as a freshly deserialised request. Only the owner zeroes it, once.
 * 2. Arguments are lent, not given. A function that receives a key buffer as an argument may read it until its
 *    promise settles, never zeroes it, and copies whatever it keeps (the L1 cache stores its own copy; a
 *    provider's SDK request must be built before the provider's promise settles).
 * 3. Return values are given. A function that returns a key buffer keeps no reference to it: the L1 cache hands
 *    out copies; a single-flight gives every waiter its own copy, then zeroes the shared result itself.
 * 4. I/O borrows until the bytes have left. A buffer handed to a gRPC write, a callback or a reply is still in
 *    use until it is serialised: grpc-js queues stream writes while the transport is busy and serialises them
 *    later, so zeroing right after `call.write(msg)` sends zeros with an OK status. Key-carrying messages are
 *    therefore serialised by their owner (`serializeMessage` in @kekbroker/proto) and the owner zeroes its
 *    plaintext only after that. A buffer that may be sent again (a retried Encrypt) stays alive until the last
 *    attempt has settled.
 * 5. When in doubt, do not zero: a buffer left to the garbage collector is a hardening gap; a buffer zeroed while
 *    someone still reads it is a wrong answer.
 */
import { timingSafeEqual } from 'node:crypto';

/** Zero buffers you own (see the rule above). */
export function zeroize(...buffers: Array<Uint8Array | undefined | null>): void {
  for (const b of buffers) b?.fill(0);
}

/** Constant-time equality for digests and tags; false (not a throw) on length mismatch. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

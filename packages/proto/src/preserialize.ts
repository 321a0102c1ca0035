/**
 * Owner-side serialisation for messages that carry key material (rule 4 in @kekbroker/core's secrets.ts).
 *
 * grpc-js serialises a stream write when the transport takes it, which may be long after `write()` returned.
 * A handler that must zero the plaintext it sends therefore serialises the message itself, sends the bytes,
 * and zeroes at once. A service definition passed through `acceptPreserialized` sends a Buffer as it is
 * (protobuf messages from proto-loader are plain objects, never Buffers) and serialises anything else as usual.
 */
import type * as grpc from '@grpc/grpc-js';

type AnyMethod = grpc.MethodDefinition<unknown, unknown>;

const passthrough = (serialize: (v: unknown) => Buffer) => (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : serialize(v));

/** A copy of `def` whose request and response serialisers pass pre-serialised Buffers through. */
export function acceptPreserialized<T extends grpc.ServiceDefinition>(def: T): T {
  const out: Record<string, AnyMethod> = {};
  for (const [name, m] of Object.entries(def as Record<string, AnyMethod>)) {
    out[name] = { ...m, requestSerialize: passthrough(m.requestSerialize), responseSerialize: passthrough(m.responseSerialize) };
  }
  return out as T;
}

/**
 * Serialise one message of `method` now. The result is typed as the message so it can be handed to grpc-js
 * (write or callback) on a service registered through `acceptPreserialized`.
 */
export function serializeMessage<M>(def: grpc.ServiceDefinition, method: string, side: 'request' | 'response', msg: M): M {
  const m = (def as Record<string, AnyMethod | undefined>)[method];
  if (!m) throw new Error(`no method ${method} in service definition`);
  return (side === 'request' ? m.requestSerialize(msg) : m.responseSerialize(msg)) as unknown as M;
}

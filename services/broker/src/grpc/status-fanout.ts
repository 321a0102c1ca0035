/**
 * WatchStatus fan-out: one keyring listener and one heartbeat timer per keyring, whatever the number of
 * streams. A change (or the heartbeat) computes and serialises the keyring's status once and writes the same
 * bytes to every stream watching it, so a thousand shims cost one status computation per change, not a
 * thousand listeners, timers and serialisations. The service is registered with acceptPreserialized.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Keyring } from '@kekbroker/keyring';
import { serializeMessage, type KeyringStatus } from '@kekbroker/proto';
import type { Leadership } from './handlers';

interface Watched {
  streams: Set<grpc.ServerWritableStream<unknown, KeyringStatus>>;
  push: () => void;
  heartbeat: NodeJS.Timeout;
}

export class StatusFanout {
  private readonly watched = new Map<Keyring, Watched>();
  private readonly onLeadership = (): void => {
    for (const w of this.watched.values()) w.push();
  };

  constructor(
    private readonly leadership: Leadership,
    private readonly def: grpc.ServiceDefinition,
    private readonly toMessage: (k: Keyring, l: Leadership) => KeyringStatus,
    private readonly heartbeatMs: number,
  ) {}

  /** Start sending `keyring`'s status on `call` (now, on every change, every heartbeat); returns the stop. */
  add(keyring: Keyring, call: grpc.ServerWritableStream<unknown, KeyringStatus>): () => void {
    let w = this.watched.get(keyring);
    if (!w) {
      const streams = new Set<grpc.ServerWritableStream<unknown, KeyringStatus>>();
      const push = (): void => {
        const bytes = serializeMessage<KeyringStatus>(this.def, 'WatchStatus', 'response', this.toMessage(keyring, this.leadership));
        for (const s of streams) s.write(bytes);
      };
      const heartbeat = setInterval(push, this.heartbeatMs);
      heartbeat.unref();
      w = { streams, push, heartbeat };
      this.watched.set(keyring, w);
      keyring.on('change', push);
      if (this.watched.size === 1) this.leadership.events.on('change', this.onLeadership);
    }
    w.streams.add(call);
    call.write(serializeMessage<KeyringStatus>(this.def, 'WatchStatus', 'response', this.toMessage(keyring, this.leadership)));
    const entry = w;
    return () => {
      if (!entry.streams.delete(call) || entry.streams.size > 0) return;
      clearInterval(entry.heartbeat);
      keyring.off('change', entry.push);
      this.watched.delete(keyring);
      if (this.watched.size === 0) this.leadership.events.off('change', this.onLeadership);
    };
  }

  /** Streams open now (for tests and metrics). */
  get streams(): number {
    let n = 0;
    for (const w of this.watched.values()) n += w.streams.size;
    return n;
  }
}

/**
 * kekbroker.v1 handlers: thin translation between protobuf messages and BrokerService. Every handler
 * returns exactly once (`return callback(...)`), and every error goes through toGrpcError.
 */
import type * as grpc from '@grpc/grpc-js';
import type { EventEmitter } from 'node:events';
import type {
  KekBrokerHandlers, KeyringStatus, SessionRequest__Output, WrapResponse, UnwrapResponse, SessionResponse, UnwrapRequest__Output, WatchStatusRequest__Output, WrapRequest__Output,
} from '@kekbroker/proto';
import { brokerV1, serializeMessage } from '@kekbroker/proto';
import { StatusFanout } from './status-fanout';
import { KekError, toKekError, zeroize } from '@kekbroker/core';
import type { Keyring } from '@kekbroker/keyring';
import type { BrokerService } from '../service';
import { callerMessage, remainingMs, toGrpcError } from './errors';
import type { IdentityMapper } from './identity';

/** In-flight requests allowed on one Session stream; beyond that a request is refused as throttled. */
const MAX_INFLIGHT_PER_SESSION = 1024;
/** Status is re-sent this often even without a change, so shims can tell a live broker from a dead one. */
export const STATUS_HEARTBEAT_MS = 5000;

export interface HandlerDeps {
  service: BrokerService;
  identity: IdentityMapper;
  leadership: Leadership;
  streams: StreamRegistry;
}

/** What a replica reports about the fleet; without Redis a lone replica is always the leader. */
export interface Leadership {
  isLeader(): boolean;
  epoch(): number;
  replicaId: string;
  cacheShared(keyring: string): boolean;
  /** Emits 'change' when this replica gains or loses the lease, so status streams push at once. */
  events: EventEmitter;
}

/**
 * Open Session and WatchStatus streams. On shutdown they are ended (sessions once their in-flight
 * requests are answered) so shims reconnect to another replica at once instead of waiting for a timeout.
 */
export class StreamRegistry {
  private readonly closers = new Set<() => void>();
  draining = false;

  add(close: () => void): () => void {
    this.closers.add(close);
    return () => this.closers.delete(close);
  }

  drain(): void {
    this.draining = true;
    for (const c of [...this.closers]) c();
  }
}

export function toStatusMessage(k: Keyring, l: Leadership): KeyringStatus {
  const s = k.status();
  return {
    keyring: s.keyring,
    key_id: s.keyId ?? '',
    healthy: s.healthy,
    reason: publicReason(s),
    leader: l.isLeader(),
    // Version refs (key ARNs, vault key versions, keystore ids) and provider error details are for the
    // admin API and the log; a shim needs the key_id, health and roles.
    acting_active: s.actingActive,
    configured_active: s.configuredActive,
    pinned: s.pinned,
    hold_down_seconds: s.holdDownSeconds,
    providers: s.providers.map((p) => ({
      id: p.id, type: p.type, role: p.role, current_version_ref: '',
      breaker_state: p.health.breaker, isolated: p.health.isolated, health_reason: providerState(p.health),
      hold_down_left_seconds: p.holdDownLeftSeconds, version_ref_from_store: p.versionRefFromStore,
    })),
    leader_epoch: l.epoch(),
    replica_id: l.replicaId,
    cache_shared: l.cacheShared(s.keyring),
  };
}

/**
 * The reason a shim (and through it kube-apiserver's log) sees: provider ids, states and the fix, never key
 * ARNs, key versions or provider error text (those are in the broker log and the admin status).
 */
function publicReason(s: ReturnType<Keyring['status']>): string {
  if (s.healthy) return 'ok';
  if (!s.keyId) return s.reason; // names provider ids only
  const acting = s.providers.find((p) => p.id === s.actingActive);
  const other = s.providers.find((p) => p.id !== s.actingActive && p.health.up);
  if (acting?.health.misconfigured) {
    const fix = other ? `fix the key, or fail over explicitly: kekctl failover ${s.keyring} --to ${other.id} --pin` : 'fix the key';
    return `acting active ${acting.id} refuses its key (${acting.health.lastCode ?? 'refused'}: disabled, deleted or not granted to the broker); the keyring does not fail over on its own; ${fix} (key and details in the broker log and admin status)`;
  }
  const states = s.providers.map((p) => `${p.id}: ${providerState(p.health)}`).join(', ');
  return `keyring ${s.keyring} cannot serve (${states}); details in the broker log and admin status`;
}

function providerState(h: ReturnType<Keyring['status']>['providers'][0]['health']): string {
  if (h.up) return 'up';
  if (h.isolated) return 'isolated';
  if (h.misconfigured) return 'refuses its key';
  return `breaker ${h.breaker}`;
}

export function createHandlers(deps: HandlerDeps): KekBrokerHandlers {
  const { service, identity } = deps;
  const def = brokerV1().KekBroker.service;
  const fanout = new StatusFanout(deps.leadership, def, toStatusMessage, STATUS_HEARTBEAT_MS);

  return {
    Wrap(call: grpc.ServerUnaryCall<WrapRequest__Output, WrapResponse>, callback: grpc.sendUnaryData<WrapResponse>) {
      let tenant: string;
      try {
        tenant = identity.tenantOf(call);
      } catch (e) {
        return callback(toGrpcError(e));
      }
      const r = call.request;
      service
        .wrap({ tenant, requestId: r.request_id, deadlineMs: remainingMs(call) }, r.keyring, r.plaintext)
        .then((out) => callback(null, { ciphertext: out.ciphertext, key_id: out.keyId }))
        .catch((e: unknown) => callback(toGrpcError(e)))
        // The request buffer is ours (deserialised for this call); the keyring has copied what it keeps.
        .finally(() => zeroize(r.plaintext));
      return undefined;
    },

    Unwrap(call: grpc.ServerUnaryCall<UnwrapRequest__Output, UnwrapResponse>, callback: grpc.sendUnaryData<UnwrapResponse>) {
      let tenant: string;
      try {
        tenant = identity.tenantOf(call);
      } catch (e) {
        return callback(toGrpcError(e));
      }
      const r = call.request;
      service
        .unwrap({ tenant, requestId: r.request_id, deadlineMs: remainingMs(call) }, r.keyring, r.ciphertext, r.key_id)
        .then((out) => {
          // Serialise now, then zero: the bytes have left our buffer before it is cleared (core/secrets.ts).
          const bytes = serializeMessage<UnwrapResponse>(def, 'Unwrap', 'response', { plaintext: out.plaintext, key_id: out.keyId, stale: out.stale });
          zeroize(out.plaintext);
          callback(null, bytes);
        })
        .catch((e: unknown) => callback(toGrpcError(e)));
      return undefined;
    },

    Session(call: grpc.ServerDuplexStream<SessionRequest__Output, SessionResponse>) {
      let tenant: string;
      try {
        tenant = identity.tenantOf(call);
      } catch (e) {
        call.emit('error', toGrpcError(e));
        return;
      }
      const closed = new AbortController();
      let inflight = 0;
      let ending = false;
      const send = (msg: SessionResponse): void => {
        if (!closed.signal.aborted) call.write(msg);
      };
      /**
       * A reply carrying key material: serialised here, so the write queue holds its own bytes and `secret`
       * (which this handler owns) can be zeroed at once. Never zero after a plain `call.write(msg)`: grpc-js
       * may serialise it later, and the shim would get zeros with an OK status.
       */
      const sendSecret = (msg: SessionResponse, secret: Buffer): void => {
        if (!closed.signal.aborted) call.write(serializeMessage(def, 'Session', 'response', msg));
        zeroize(secret);
      };
      const endIfIdle = (): void => {
        if (ending && inflight === 0 && !closed.signal.aborted) {
          closed.abort();
          call.end();
        }
      };
      const unregister = deps.streams.add(() => {
        ending = true;
        endIfIdle();
      });
      call.on('data', (req: SessionRequest__Output) => {
        const id = req.id;
        const fail = (e: unknown): void => {
          const err = toKekError(e);
          send({ id, error: { grpc_code: err.grpcStatus, code: err.code, message: callerMessage(err) } });
        };
        if (ending) return fail(new KekError('unavailable', 'broker is shutting down; retry on another replica'));
        if (inflight >= MAX_INFLIGHT_PER_SESSION) return fail(new KekError('throttled', `more than ${MAX_INFLIGHT_PER_SESSION} requests in flight on one session`));
        const caller = { tenant, deadlineMs: req.deadline_ms || undefined, signal: closed.signal };
        inflight++;
        const done = (): void => {
          inflight--;
          endIfIdle();
        };
        if (req.wrap) {
          const w = req.wrap;
          service
            .wrap({ ...caller, requestId: w.request_id }, w.keyring, w.plaintext)
            .then((out) => send({ id, wrap: { ciphertext: out.ciphertext, key_id: out.keyId } }), fail)
            .finally(() => {
              zeroize(w.plaintext); // ours, and the wrap has settled: nothing else reads it
              done();
            });
        } else if (req.unwrap) {
          const u = req.unwrap;
          service
            .unwrap({ ...caller, requestId: u.request_id }, u.keyring, u.ciphertext, u.key_id)
            .then((out) => sendSecret({ id, unwrap: { plaintext: out.plaintext, key_id: out.keyId, stale: out.stale } }, out.plaintext), fail)
            .finally(done);
        } else {
          done();
          fail(new KekError('invalid-input', 'session request has neither wrap nor unwrap'));
        }
        return undefined;
      });
      const end = (): void => {
        unregister();
        if (!closed.signal.aborted) closed.abort();
      };
      call.on('end', () => {
        end();
        call.end();
      });
      call.on('cancelled', end);
      call.on('error', end);
    },

    WatchStatus(call: grpc.ServerWritableStream<WatchStatusRequest__Output, KeyringStatus>) {
      let keyring: Keyring;
      try {
        const tenant = identity.tenantOf(call);
        keyring = service.authorize(tenant, call.request.keyring, 'unwrap');
      } catch (e) {
        call.emit('error', toGrpcError(e));
        return;
      }
      const remove = fanout.add(keyring, call);
      const stop = (): void => {
        remove();
        unregister();
      };
      const unregister = deps.streams.add(() => {
        stop();
        call.end();
      });
      call.on('cancelled', stop);
      call.on('error', stop);
      call.on('close', stop);
    },
  };
}

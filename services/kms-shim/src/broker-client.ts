/**
 * The shim's connection to the broker: one gRPC channel carrying
 *  - a Session stream on which every Encrypt/Decrypt is multiplexed (matched by id), and
 *  - a WatchStatus stream that keeps the latest keyring status in memory, so Status never calls out.
 * Both reconnect with backoff; after a failure the next endpoint in the list is tried (HA brokers).
 */
import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { acceptPreserialized, brokerV1, serializeMessage, type KekBrokerClient, type KeyringStatus__Output, type SessionResponse__Output } from '@kekbroker/proto';
import { GrpcStatus, KekError, ERROR_CODES, type ErrorCode } from '@kekbroker/core';

export interface BrokerClientOptions {
  endpoints: readonly string[];
  keyring: string;
  credentials: grpc.ChannelCredentials;
  /** Dev mode only: the tenant header the broker reads on an insecure loopback listener. */
  devTenant?: string;
  /** TLS server name to verify (defaults to the endpoint host). */
  serverName?: string;
}

interface Pending {
  resolve(r: SessionResponse__Output): void;
  reject(e: KekError): void;
  timer: NodeJS.Timeout;
}

/**
 * Session requests carry seeds (Encrypt): they are serialised in `call` itself, so the caller's buffer is free
 * as soon as `call` returns, whatever grpc-js does with its write queue (core/secrets.ts, rule 4).
 */
const brokerService = () => acceptPreserialized(brokerV1().KekBroker.service);
const BrokerCtor = () => grpc.makeGenericClientConstructor(brokerService(), 'KekBroker') as unknown as new (
  address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => KekBrokerClient;

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2000;

export class BrokerClient extends EventEmitter {
  private client: KekBrokerClient | undefined;
  private endpointIndex = 0;
  private session: grpc.ClientDuplexStream<unknown, SessionResponse__Output> | undefined;
  private watch: grpc.ClientReadableStream<KeyringStatus__Output> | undefined;
  private readonly pending = new Map<string, Pending>();
  private nextId = 1n;
  private backoff = BACKOFF_MIN_MS;
  private stopped = false;
  /** Bumped on every (re)connect: events from an older stream must not tear down the new one. */
  private epoch = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Latest status from the broker and when it arrived (monotonic ms). */
  status: KeyringStatus__Output | undefined;
  statusAt = 0;
  connected = false;
  /** Why the last connection attempt or stream failed (the broker's own message), until a status arrives. */
  lastError: string | undefined;
  /** The endpoint that last failed (the index has moved on to the next one by then). */
  lastTried: string | undefined;

  constructor(private readonly opts: BrokerClientOptions) {
    super();
    if (opts.endpoints.length === 0) throw new Error('at least one broker endpoint is required');
  }

  get endpoint(): string {
    return this.opts.endpoints[this.endpointIndex % this.opts.endpoints.length] as string;
  }

  start(): void {
    this.connect();
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.opts.devTenant) md.set('x-kekbroker-tenant', this.opts.devTenant);
    return md;
  }

  private connect(): void {
    if (this.stopped) return;
    const Ctor = BrokerCtor();
    const options: grpc.ChannelOptions = {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      // channelz keeps per-call tracing state nobody reads here; it shows in CPU profiles of the hot path.
      'grpc.enable_channelz': 0,
      // grpc-js's transparent retries put every Session write through a RetryingCall that buffers it until the
      // call commits; BrokerPool already re-sends a failed call to another replica, so they buy nothing here.
      'grpc.enable_retries': 0,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': 2 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': BACKOFF_MIN_MS,
      'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
    };
    if (this.opts.serverName) options['grpc.ssl_target_name_override'] = this.opts.serverName;
    this.client = new Ctor(this.endpoint, this.opts.credentials, options);
    const epoch = ++this.epoch;
    this.openWatch(epoch);
    this.openSession(epoch);
  }

  private openWatch(epoch: number): void {
    const client = this.client as KekBrokerClient;
    const w = client.WatchStatus({ keyring: this.opts.keyring }, this.metadata());
    this.watch = w;
    w.on('data', (s: KeyringStatus__Output) => {
      if (epoch !== this.epoch) return;
      this.status = s;
      this.statusAt = performance.now();
      this.lastError = undefined;
      this.backoff = BACKOFF_MIN_MS;
      if (!this.connected) {
        this.connected = true;
        this.emit('connected', this.endpoint);
      }
      this.emit('status', s);
    });
    w.on('error', (e: grpc.ServiceError) => this.lost(epoch, `status watch: ${e.details || e.message}`, e.code));
    w.on('end', () => this.lost(epoch, 'status watch ended', GrpcStatus.UNAVAILABLE));
  }

  private openSession(epoch: number): void {
    const client = this.client as KekBrokerClient;
    const s = client.Session(this.metadata()) as unknown as grpc.ClientDuplexStream<unknown, SessionResponse__Output>;
    this.session = s;
    s.on('data', (r: SessionResponse__Output) => {
      const p = this.pending.get(r.id);
      if (!p) return; // answered after its deadline: already rejected
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      p.resolve(r);
    });
    s.on('error', (e: grpc.ServiceError) => this.lost(epoch, `session: ${e.details || e.message}`, e.code));
    s.on('end', () => this.lost(epoch, 'session ended', GrpcStatus.UNAVAILABLE));
  }

  /** Either stream failed: fail what is in flight, drop the channel, reconnect (next endpoint) after a backoff. */
  private lost(epoch: number, why: string, code: number): void {
    if (this.stopped || !this.client || epoch !== this.epoch) return;
    const wasConnected = this.connected;
    this.connected = false;
    this.session?.removeAllListeners('data');
    this.session?.cancel();
    this.watch?.cancel();
    this.client.close();
    this.client = undefined;
    this.session = undefined;
    this.watch = undefined;
    const err = new KekError('unavailable', `broker ${this.endpoint} unreachable (${why})`);
    this.lastTried = this.endpoint;
    this.lastError = `broker ${this.endpoint}: ${why}`;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
    this.emit('disconnected', why, code, wasConnected);
    this.endpointIndex++;
    const wait = this.backoff;
    this.backoff = Math.min(BACKOFF_MAX_MS, this.backoff * 2);
    this.reconnectTimer = setTimeout(() => this.connect(), wait);
  }

  /**
   * Send one op on the session; resolves with the broker's answer or rejects with a KekError. The request is
   * serialised before this returns: the caller may zero the buffers in `op` once it no longer needs to resend.
   */
  call(op: { wrap?: object; unwrap?: object }, deadlineMs: number): Promise<SessionResponse__Output> {
    return new Promise((resolve, reject) => {
      if (!this.session || !this.connected) {
        reject(new KekError('unavailable', `no connection to a broker (last tried ${this.endpoint})`));
        return;
      }
      const id = String(this.nextId++);
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new KekError('timeout', `broker did not answer within ${deadlineMs} ms`));
      }, deadlineMs);
      this.pending.set(id, { resolve, reject, timer });
      this.session.write(serializeMessage(brokerV1().KekBroker.service, 'Session', 'request', { id, deadline_ms: deadlineMs, ...op }));
    });
  }

  /** Wait until connected or the time runs out (a call during a reconnect waits instead of failing). */
  async waitConnected(ms: number): Promise<boolean> {
    if (this.connected) return true;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.off('connected', on);
        resolve(false);
      }, ms);
      const on = (): void => {
        clearTimeout(t);
        resolve(true);
      };
      this.once('connected', on);
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.session?.end();
    this.watch?.cancel();
    this.client?.close();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new KekError('unavailable', 'shim shutting down'));
    }
    this.pending.clear();
  }
}

/** A broker-side error carried in a SessionResponse, as a KekError. */
export function sessionError(e: { code: string; message: string }): KekError {
  const code = (ERROR_CODES as readonly string[]).includes(e.code) ? (e.code as ErrorCode) : 'internal';
  return new KekError(code, e.message);
}

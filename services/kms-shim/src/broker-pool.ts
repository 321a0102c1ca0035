/**
 * The shim's view of a broker fleet: one BrokerClient (Session + WatchStatus streams) per endpoint, all
 * connected at once, so a replica dying costs a retry, not a reconnect.
 *
 * A call goes to the best replica: live (connected, status heard within a heartbeat and a margin), not
 * suspected, the leader first. If that replica's stream breaks, it misses its attempt deadline, or it answers
 * UNAVAILABLE (e.g. draining), the call is sent again to the next replica within the same budget: Decrypt is
 * idempotent, and a retried Encrypt only makes a second valid envelope. A replica that missed a deadline is
 * suspected (skipped) until it proves itself alive with a fresh status, so a SIGSTOPped broker is left on
 * the first miss instead of after the stream's keepalive gives up.
 *
 * Key material: `call` serialises the request synchronously on every attempt (BrokerClient.call), so the
 * caller may zero its plaintext once `call` has settled, i.e. after the last attempt (core/secrets.ts rule 4).
 */
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { KekError, toKekError } from '@kekbroker/core';
import type { KeyringStatus__Output, SessionResponse__Output } from '@kekbroker/proto';
import { BrokerClient } from './broker-client';

/** Brokers re-send status every 5 s: one missed heartbeat plus this margin marks a replica silent. */
const HEARTBEAT_MS = 5000;
const SILENT_AFTER_MS = HEARTBEAT_MS + 1500;
/** The first attempt gets this share of the budget when another replica could take over. */
const FIRST_ATTEMPT_SHARE = 0.5;
/** Below this, a retry cannot finish: answer with the last error. */
const MIN_ATTEMPT_MS = 50;

export interface BrokerPoolOptions {
  endpoints: readonly string[];
  keyring: string;
  credentials: grpc.ChannelCredentials;
  devTenant?: string;
  serverName?: string;
}

interface Member {
  client: BrokerClient;
  /** Skipped until this time unless it sends a fresh status first (monotonic ms). */
  suspectSince: number;
}

export class BrokerPool extends EventEmitter {
  private readonly members: Member[];
  /** Counters for metrics. */
  readonly counters = { retries: 0, suspected: 0 };

  constructor(opts: BrokerPoolOptions) {
    super();
    if (opts.endpoints.length === 0) throw new Error('at least one broker endpoint is required');
    this.members = opts.endpoints.map((ep) => {
      const client = new BrokerClient({ ...opts, endpoints: [ep] });
      const m: Member = { client, suspectSince: 0 };
      client.on('connected', (e: string) => this.emit('connected', e));
      client.on('disconnected', (why: string, code: number, was: boolean) => this.emit('disconnected', `${client.endpoint}: ${why}`, code, was));
      client.on('status', (s: KeyringStatus__Output) => {
        // A status sent after the suspicion proves the replica is alive again.
        m.suspectSince = 0;
        this.emit('status', this.status ?? s);
      });
      return m;
    });
  }

  start(): void {
    for (const m of this.members) m.client.start();
  }

  stop(): void {
    for (const m of this.members) m.client.stop();
  }

  private live(m: Member, now = performance.now()): boolean {
    return m.client.connected && m.suspectSince === 0 && now - m.client.statusAt < SILENT_AFTER_MS;
  }

  /** Live replicas, the leader first, then in the configured order. */
  private ranked(): Member[] {
    const now = performance.now();
    return this.members
      .filter((m) => this.live(m, now))
      .sort((a, b) => Number(Boolean(b.client.status?.leader)) - Number(Boolean(a.client.status?.leader)));
  }

  /** The replica Status is answered from: the best live one, else the one heard from last. */
  private best(): BrokerClient | undefined {
    const r = this.ranked()[0];
    if (r) return r.client;
    return [...this.members].sort((a, b) => b.client.statusAt - a.client.statusAt)[0]?.client;
  }

  get status(): KeyringStatus__Output | undefined {
    return this.best()?.status;
  }

  get statusAt(): number {
    return this.best()?.statusAt ?? 0;
  }

  get connected(): boolean {
    return this.members.some((m) => m.client.connected);
  }

  /** Why the replica tried last could not be reached (a TLS name mismatch, an unmapped certificate, ...). */
  get lastError(): string | undefined {
    return [...this.members].map((m) => m.client.lastError).find((e) => e !== undefined);
  }

  /** The endpoint tried last, for logs. */
  get lastTried(): string | undefined {
    return this.members.map((m) => m.client.lastTried).find((e) => e !== undefined);
  }

  /** The preferred endpoint (for messages and logs). */
  get endpoint(): string {
    return this.best()?.endpoint ?? this.members.map((m) => m.client.endpoint).join(',');
  }

  get endpoints(): Array<{ endpoint: string; connected: boolean; leader: boolean; live: boolean }> {
    return this.members.map((m) => ({ endpoint: m.client.endpoint, connected: m.client.connected, leader: Boolean(m.client.status?.leader), live: this.live(m) }));
  }

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

  /**
   * Send `op` to the best replica, and again to the next ones within `budgetMs` while attempts fail for a
   * reason another replica may not share. Resolves with a broker answer (which may carry a broker error).
   */
  async call(op: { wrap?: object; unwrap?: object }, budgetMs: number): Promise<SessionResponse__Output> {
    const end = performance.now() + budgetMs;
    const tried = new Set<Member>();
    let lastError: KekError | undefined;
    for (;;) {
      const left = end - performance.now();
      if (left < MIN_ATTEMPT_MS) throw lastError ?? new KekError('unavailable', `no broker reachable within ${budgetMs} ms (${this.endpoint})`);
      let candidates = this.ranked().filter((m) => !tried.has(m));
      if (candidates.length === 0) {
        // Nothing live right now (a takeover, a restart): wait for any replica to connect, within the budget.
        const fallback = this.members.filter((m) => m.client.connected && !tried.has(m));
        if (fallback.length === 0) {
          if (!(await this.waitConnected(Math.min(left, 250)))) {
            if (end - performance.now() < MIN_ATTEMPT_MS) throw lastError ?? new KekError('unavailable', `no broker reachable within ${budgetMs} ms (${this.endpoint})`);
          }
          if (tried.size === this.members.length) tried.clear(); // every replica failed once: try the best again
          continue;
        }
        candidates = fallback;
      }
      const m = candidates[0] as Member;
      const others = this.members.length - tried.size - 1;
      const attemptMs = Math.floor(others > 0 ? Math.max(Math.min(left, MIN_ATTEMPT_MS * 4), left * FIRST_ATTEMPT_SHARE) : left);
      tried.add(m);
      if (tried.size > 1) this.counters.retries++;
      try {
        const r = await m.client.call(op, attemptMs);
        // A replica that is draining or cannot reach its KMS says UNAVAILABLE: another one may serve.
        if (r.error && r.error.code === 'unavailable' && end - performance.now() >= MIN_ATTEMPT_MS && this.members.some((x) => !tried.has(x))) {
          lastError = new KekError('unavailable', r.error.message);
          continue;
        }
        return r;
      } catch (e) {
        const err = toKekError(e);
        lastError = err;
        if (err.code === 'timeout' && m.suspectSince === 0) {
          m.suspectSince = performance.now();
          this.counters.suspected++;
          this.emit('suspect', m.client.endpoint, err.message);
        }
        if (err.code !== 'timeout' && err.code !== 'unavailable') throw err;
      }
    }
  }
}

/** The broker's metrics. Labels come from fixed sets: op, result code, and names from config. */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, PREFIX, createRegistry, type Registry } from '@kekbroker/telemetry';
import type { DefaultKeyCache } from '@kekbroker/cache';
import type { Fleet } from '@kekbroker/ha';
import type { Keyring } from '@kekbroker/keyring';
import type { BreakerState, ProviderGuard } from '@kekbroker/resilience';
import type { Leadership } from './grpc/handlers';

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export class BrokerMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'op' | 'keyring' | 'tenant' | 'result'>;
  readonly duration: Histogram<'op' | 'result'>;
  readonly providerCalls: Counter<'provider' | 'op' | 'result'>;
  readonly providerDuration: Histogram<'provider' | 'op'>;
  readonly breakerTransitions: Counter<'provider' | 'to'>;
  readonly degradedEnvelopes: Counter<'keyring' | 'provider'>;
  readonly passiveDropped: Counter<'keyring' | 'provider'>;
  readonly badAnswers: Counter<'keyring' | 'provider'>;
  readonly actingChanges: Counter<'keyring' | 'to' | 'cause'>;
  readonly staleServed: Counter<'keyring' | 'cause'>;

  constructor(cache: DefaultKeyCache, fleet: Fleet | undefined, leadership: Leadership, keyrings: () => Iterable<Keyring>, guards: () => Iterable<ProviderGuard> = () => [], version = 'unknown') {
    const registry = (this.registry = createRegistry('broker', version));
    const gauge = (name: string, help: string, value: () => number): void => {
      new Gauge({ name: `${PREFIX}${name}`, help, registers: [registry], collect() { this.set(value()); } });
    };
    this.requests = new Counter({ name: `${PREFIX}requests_total`, help: 'Wrap/unwrap requests by result code', labelNames: ['op', 'keyring', 'tenant', 'result'], registers: [registry] });
    this.duration = new Histogram({ name: `${PREFIX}request_duration_seconds`, help: 'Broker-side request latency', labelNames: ['op', 'result'], buckets: LATENCY_BUCKETS, registers: [registry] });
    this.providerCalls = new Counter({ name: `${PREFIX}provider_calls_total`, help: 'KMS calls by provider and result code', labelNames: ['provider', 'op', 'result'], registers: [registry] });
    this.providerDuration = new Histogram({ name: `${PREFIX}provider_call_duration_seconds`, help: 'KMS call latency', labelNames: ['provider', 'op'], buckets: LATENCY_BUCKETS, registers: [registry] });
    // Resilience (breakers, failover). Breaker state: 0 closed, 1 half-open, 2 open.
    new Gauge({
      name: `${PREFIX}breaker_state`, help: 'Circuit breaker per provider: 0 closed, 1 half-open, 2 open', labelNames: ['provider'], registers: [registry],
      collect() { for (const g of guards()) this.set({ provider: g.id }, BREAKER_VALUE[g.state]); },
    });
    new Gauge({
      name: `${PREFIX}provider_isolated`, help: '1 while an operator has isolated the provider', labelNames: ['provider'], registers: [registry],
      collect() { for (const g of guards()) this.set({ provider: g.id }, g.isolated ? 1 : 0); },
    });
    new Gauge({
      name: `${PREFIX}provider_retries`, help: 'Retries of provider calls (the SDK\'s own included) since start, by whether the retry budget allowed them', labelNames: ['provider', 'result'], registers: [registry],
      collect() { for (const g of guards()) { this.set({ provider: g.id, result: 'made' }, g.retries.counters.retries); this.set({ provider: g.id, result: 'refused' }, g.retries.counters.refused); } },
    });
    this.breakerTransitions = new Counter({ name: `${PREFIX}breaker_transitions_total`, help: 'Circuit breaker state changes by provider and new state', labelNames: ['provider', 'to'], registers: [registry] });
    this.degradedEnvelopes = new Counter({ name: `${PREFIX}degraded_envelopes_total`, help: 'Envelopes sealed without this provider\'s wrap (it was down, slow, isolated or lying)', labelNames: ['keyring', 'provider'], registers: [registry] });
    this.passiveDropped = new Counter({ name: `${PREFIX}passive_wraps_dropped_total`, help: 'Passive wraps left out because they did not answer within their share of the deadline', labelNames: ['keyring', 'provider'], registers: [registry] });
    this.badAnswers = new Counter({ name: `${PREFIX}provider_bad_answers_total`, help: 'Provider answers that failed verification (a wrap that does not unwrap to K, a K that fails payload authentication)', labelNames: ['keyring', 'provider'], registers: [registry] });
    this.actingChanges = new Counter({ name: `${PREFIX}acting_active_changes_total`, help: 'Acting active moves by cause (breaker, failback, operator)', labelNames: ['keyring', 'to', 'cause'], registers: [registry] });
    new Gauge({
      name: `${PREFIX}keyring_failed_over`, help: '1 while the keyring writes under another provider than its configured active (failover or operator pin)', labelNames: ['keyring'], registers: [registry],
      collect() { for (const k of keyrings()) { const s = k.status(); this.set({ keyring: k.name }, s.actingActive === s.configuredActive ? 0 : 1); } },
    });
    new Gauge({
      name: `${PREFIX}acting_active`, help: '1 for the provider acting as active of each keyring', labelNames: ['keyring', 'provider'], registers: [registry],
      collect() { for (const k of keyrings()) { const s = k.status(); for (const p of s.providers) this.set({ keyring: k.name, provider: p.id }, p.id === s.actingActive ? 1 : 0); } },
    });
    this.staleServed = new Counter({ name: `${PREFIX}cache_stale_served_total`, help: 'Answers served from cache past their TTL because the KMS failed', labelNames: ['keyring', 'cause'], registers: [registry] });
    gauge('cache_entries', 'Entries in the L1 cache', () => cache.l1.size);
    gauge('cache_bytes', 'Bytes accounted in the L1 cache (plaintext + per-entry overhead)', () => cache.l1.bytes);
    gauge('cache_hits', 'L1 cache hits since start', () => cache.l1.hits);
    gauge('cache_misses', 'L1 cache misses since start', () => cache.l1.misses);
    gauge('cache_l2_hits', 'Unwraps answered from the shared sealed L2 (Redis) since start', () => cache.counters.l2Hits);
    gauge('cache_loads', 'Unwraps that went to the keyring providers (this replica) since start', () => cache.counters.loads);
    gauge('leader', '1 while this replica holds the leader lease', () => (leadership.isLeader() ? 1 : 0));
    gauge('leader_epoch', 'Fencing epoch of the leader term this replica last saw', () => leadership.epoch());
    // Registered without Redis too (no sample then), so rules and dashboards can name it on every broker.
    new Gauge({
      name: `${PREFIX}redis_up`, help: '1 when Redis answered the last command (0: L1 only for a back-off); no sample without redis', registers: [registry],
      collect() { if (fleet) this.set(fleet.health.up ? 1 : 0); },
    });
    if (fleet) {
      const c = fleet.cache.counters;
      gauge('redis_errors', 'Failed or timed-out Redis commands since start', () => fleet.health.failures);
      gauge('cache_l2_rejected', 'L2 entries that did not authenticate (other tenant, unknown sealing key, tampered) since start', () => c.l2Rejected);
      gauge('cache_l2_writes', 'Sealed entries written to L2 since start', () => c.l2Writes);
      gauge('flight_leads', 'Fleet-wide single-flight: loads this replica made holding the lock', () => c.flightLeads);
      gauge('flight_waits', 'Fleet-wide single-flight: misses that waited for another replica', () => c.flightWaits);
      gauge('flight_takeovers', 'Fleet-wide single-flight: locks taken over after the holder went silent', () => c.flightTakeovers);
      gauge('leader_transitions', 'Times this replica gained or lost the lease', () => fleet.lease.transitions);
      gauge('sealing_key_unwraps', 'Cache-sealing key unwraps (KMS calls) by this replica', () => fleet.sealing.unwraps);
      new Gauge({
        name: `${PREFIX}cache_shared`, help: '1 when this replica uses the shared sealed L2 for the keyring (0: L1 only; see /v1/admin/status)', labelNames: ['keyring'], registers: [registry],
        collect() { for (const s of fleet.sealing.status()) this.set({ keyring: s.keyring }, fleet.cache.available(s.keyring) ? 1 : 0); },
      });
    }
    new Gauge({
      name: `${PREFIX}keyring_healthy`, help: '1 when the keyring can wrap and unwrap', labelNames: ['keyring'], registers: [registry],
      collect() { for (const k of keyrings()) this.set({ keyring: k.name }, k.status().healthy ? 1 : 0); },
    });
    new Gauge({
      name: `${PREFIX}provider_up`, help: '1 when the provider\'s breaker is closed and it is not isolated', labelNames: ['keyring', 'provider'], registers: [registry],
      collect() { for (const k of keyrings()) for (const p of k.status().providers) this.set({ keyring: k.name, provider: p.id }, p.health.up ? 1 : 0); },
    });
  }
}

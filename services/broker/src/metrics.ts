/** The broker's metrics. Labels come from fixed sets: op, result code, and names from config. */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, PREFIX, createRegistry, type Registry } from '@kekbroker/telemetry';
import type { LruCache } from '@kekbroker/cache';
import type { Keyring } from '@kekbroker/keyring';
import type { BreakerState, ProviderGuard } from '@kekbroker/resilience';

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

  constructor(cache: LruCache, keyrings: () => Iterable<Keyring>, guards: () => Iterable<ProviderGuard> = () => [], version = 'unknown') {
    const registry = (this.registry = createRegistry('broker', version));
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
    this.breakerTransitions = new Counter({ name: `${PREFIX}breaker_transitions_total`, help: 'Circuit breaker state changes by provider and new state', labelNames: ['provider', 'to'], registers: [registry] });
    this.degradedEnvelopes = new Counter({ name: `${PREFIX}degraded_envelopes_total`, help: 'Envelopes sealed without this provider\'s wrap (it was down, slow, isolated or lying)', labelNames: ['keyring', 'provider'], registers: [registry] });
    this.passiveDropped = new Counter({ name: `${PREFIX}passive_wraps_dropped_total`, help: 'Passive wraps left out because they did not answer within their share of the deadline', labelNames: ['keyring', 'provider'], registers: [registry] });
    this.badAnswers = new Counter({ name: `${PREFIX}provider_bad_answers_total`, help: 'Provider answers that failed verification (a wrap that does not unwrap to K, a K that fails payload authentication)', labelNames: ['keyring', 'provider'], registers: [registry] });
    this.actingChanges = new Counter({ name: `${PREFIX}acting_active_changes_total`, help: 'Acting active moves by cause (breaker, failback, operator)', labelNames: ['keyring', 'to', 'cause'], registers: [registry] });
    new Gauge({
      name: `${PREFIX}acting_active`, help: '1 for the provider acting as active of each keyring', labelNames: ['keyring', 'provider'], registers: [registry],
      collect() { for (const k of keyrings()) { const s = k.status(); for (const p of s.providers) this.set({ keyring: k.name, provider: p.id }, p.id === s.actingActive ? 1 : 0); } },
    });
    new Gauge({ name: `${PREFIX}cache_entries`, help: 'Entries in the L1 cache', registers: [registry], collect() { this.set(cache.size); } });
    new Gauge({ name: `${PREFIX}cache_hits`, help: 'L1 cache hits since start', registers: [registry], collect() { this.set(cache.hits); } });
    new Gauge({ name: `${PREFIX}cache_misses`, help: 'L1 cache misses since start', registers: [registry], collect() { this.set(cache.misses); } });
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

/** The broker's metrics. Labels come from fixed sets: op, result code, and names from config. */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, PREFIX, createRegistry, type Registry } from '@kekbroker/telemetry';
import type { LruCache } from '@kekbroker/cache';
import type { Keyring } from '@kekbroker/keyring';

export class BrokerMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'op' | 'keyring' | 'tenant' | 'result'>;
  readonly duration: Histogram<'op' | 'result'>;
  readonly providerCalls: Counter<'provider' | 'op' | 'result'>;
  readonly providerDuration: Histogram<'provider' | 'op'>;

  constructor(cache: LruCache, keyrings: () => Iterable<Keyring>, version = 'unknown') {
    const registry = (this.registry = createRegistry('broker', version));
    this.requests = new Counter({ name: `${PREFIX}requests_total`, help: 'Wrap/unwrap requests by result code', labelNames: ['op', 'keyring', 'tenant', 'result'], registers: [registry] });
    this.duration = new Histogram({ name: `${PREFIX}request_duration_seconds`, help: 'Broker-side request latency', labelNames: ['op', 'result'], buckets: LATENCY_BUCKETS, registers: [registry] });
    this.providerCalls = new Counter({ name: `${PREFIX}provider_calls_total`, help: 'KMS calls by provider and result code', labelNames: ['provider', 'op', 'result'], registers: [registry] });
    this.providerDuration = new Histogram({ name: `${PREFIX}provider_call_duration_seconds`, help: 'KMS call latency', labelNames: ['provider', 'op'], buckets: LATENCY_BUCKETS, registers: [registry] });
    new Gauge({ name: `${PREFIX}cache_entries`, help: 'Entries in the L1 cache', registers: [registry], collect() { this.set(cache.size); } });
    new Gauge({ name: `${PREFIX}cache_hits`, help: 'L1 cache hits since start', registers: [registry], collect() { this.set(cache.hits); } });
    new Gauge({ name: `${PREFIX}cache_misses`, help: 'L1 cache misses since start', registers: [registry], collect() { this.set(cache.misses); } });
    new Gauge({
      name: `${PREFIX}keyring_healthy`, help: '1 when the keyring can wrap and unwrap', labelNames: ['keyring'], registers: [registry],
      collect() { for (const k of keyrings()) this.set({ keyring: k.name }, k.status().healthy ? 1 : 0); },
    });
    new Gauge({
      name: `${PREFIX}provider_up`, help: '1 when the provider answered its last call or probe', labelNames: ['keyring', 'provider'], registers: [registry],
      collect() { for (const k of keyrings()) for (const p of k.status().providers) this.set({ keyring: k.name, provider: p.id }, p.health.up ? 1 : 0); },
    });
  }
}

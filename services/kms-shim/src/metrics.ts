/** Shim metrics: KMS v2 calls by method and result code, and the broker connection. */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, PREFIX, createRegistry, type Registry } from '@kekbroker/telemetry';
import type { BrokerPool } from './broker-pool';

export class ShimMetrics {
  readonly registry: Registry;
  private readonly calls: Counter<'method' | 'result'>;
  private readonly duration: Histogram<'method'>;

  constructor(broker: Pick<BrokerPool, 'status' | 'statusAt' | 'connected'> & Partial<Pick<BrokerPool, 'counters' | 'endpoints'>>, version = 'unknown') {
    const registry = (this.registry = createRegistry('kms-shim', version));
    this.calls = new Counter({ name: `${PREFIX}shim_calls_total`, help: 'KMS v2 calls from kube-apiserver by result code', labelNames: ['method', 'result'], registers: [registry] });
    this.duration = new Histogram({ name: `${PREFIX}shim_call_duration_seconds`, help: 'KMS v2 call latency seen by the shim', labelNames: ['method'], buckets: LATENCY_BUCKETS, registers: [registry] });
    new Gauge({ name: `${PREFIX}shim_broker_connected`, help: '1 while the shim has a live status stream from a broker', registers: [registry], collect() { this.set(broker.connected ? 1 : 0); } });
    new Gauge({
      name: `${PREFIX}shim_status_age_seconds`, help: 'Age of the last status received from the broker', registers: [registry],
      collect() { this.set(broker.status ? (performance.now() - broker.statusAt) / 1000 : -1); },
    });
    new Gauge({ name: `${PREFIX}shim_broker_retries`, help: 'Calls re-sent to another broker replica since start', registers: [registry], collect() { this.set(broker.counters?.retries ?? 0); } });
    new Gauge({ name: `${PREFIX}shim_broker_suspected`, help: 'Times a replica missed a deadline and was skipped until its next status', registers: [registry], collect() { this.set(broker.counters?.suspected ?? 0); } });
    new Gauge({
      name: `${PREFIX}shim_broker_live`, help: '1 for each broker endpoint that is connected and heard from within a heartbeat', labelNames: ['endpoint'], registers: [registry],
      collect() { for (const e of broker.endpoints ?? []) this.set({ endpoint: e.endpoint }, e.live ? 1 : 0); },
    });
  }

  observe(method: string, result: string, seconds: number): void {
    this.calls.inc({ method, result });
    this.duration.observe({ method }, seconds);
  }
}

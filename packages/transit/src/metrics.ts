/** Transit metrics; labels come from config (key names, tenants) and fixed sets (op, result). */
import { Counter, Histogram, LATENCY_BUCKETS, PREFIX, type Registry } from '@kekbroker/telemetry';

export class TransitMetrics {
  private readonly requests: Counter<'op' | 'key' | 'tenant' | 'result'>;
  private readonly items: Counter<'op' | 'key'>;
  private readonly duration: Histogram<'op'>;
  readonly dataKeysCreated: Counter<'key'>;

  constructor(registry: Registry) {
    this.requests = new Counter({ name: `${PREFIX}transit_requests_total`, help: 'Transit HTTP requests by operation, key, tenant and result (ok or HTTP status)', labelNames: ['op', 'key', 'tenant', 'result'], registers: [registry] });
    this.items = new Counter({ name: `${PREFIX}transit_batch_items_total`, help: 'Items processed by transit requests (a single request counts 1)', labelNames: ['op', 'key'], registers: [registry] });
    this.duration = new Histogram({ name: `${PREFIX}transit_request_duration_seconds`, help: 'Transit request latency', labelNames: ['op'], buckets: LATENCY_BUCKETS, registers: [registry] });
    this.dataKeysCreated = new Counter({ name: `${PREFIX}transit_data_keys_created_total`, help: 'Transit data keys created (each is one keyring wrap: one KMS call per provider)', labelNames: ['key'], registers: [registry] });
  }

  observe(op: string, key: string, tenant: string, result: string, seconds: number, items: number): void {
    this.requests.inc({ op, key, tenant, result });
    if (items > 0) this.items.inc({ op, key }, items);
    this.duration.observe({ op }, seconds);
  }
}

/** Transit metrics; labels come from config (key names, tenants) and fixed sets (op, result). */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, PREFIX, type Registry } from '@kekbroker/telemetry';

export class TransitMetrics {
  private readonly requests: Counter<'op' | 'key' | 'tenant' | 'result'>;
  private readonly items: Counter<'op' | 'key'>;
  private readonly duration: Histogram<'op'>;
  readonly dataKeysCreated: Counter<'key'>;
  readonly dataKeysFromFleet: Counter<'key'>;
  readonly dataKeysLocalOnly: Counter<'key' | 'reason'>;

  /** `sharedFor` lists the transit keyrings and whether this replica can share data keys for each right now. */
  constructor(registry: Registry, sharedFor: () => Array<[string, boolean]> = () => []) {
    const flush = (): void => this.flush();
    this.requests = new Counter({ name: `${PREFIX}transit_requests_total`, help: 'Transit HTTP requests by operation, key, tenant and result (ok or HTTP status)', labelNames: ['op', 'key', 'tenant', 'result'], registers: [registry], collect: flush });
    this.items = new Counter({ name: `${PREFIX}transit_batch_items_total`, help: 'Items processed by transit requests (a single request counts 1)', labelNames: ['op', 'key'], registers: [registry], collect: flush });
    this.duration = new Histogram({ name: `${PREFIX}transit_request_duration_seconds`, help: 'Transit request latency', labelNames: ['op'], buckets: LATENCY_BUCKETS, registers: [registry] });
    this.dataKeysCreated = new Counter({ name: `${PREFIX}transit_data_keys_created_total`, help: 'Transit data keys created (each is one keyring wrap: one KMS call per provider)', labelNames: ['key'], registers: [registry] });
    this.dataKeysFromFleet = new Counter({ name: `${PREFIX}transit_data_keys_from_fleet_total`, help: 'Transit data keys taken from the fleet (another replica wrapped it; opened from Redis, no KMS call)', labelNames: ['key'], registers: [registry] });
    this.dataKeysLocalOnly = new Counter({ name: `${PREFIX}transit_data_keys_local_only_total`, help: 'Transit data keys this replica made and keeps to itself, by reason (no redis configured, redis or sealing key unavailable, ...)', labelNames: ['key', 'reason'], registers: [registry] });
    new Gauge({
      name: `${PREFIX}transit_data_keys_shared`, help: '1 while this replica shares transit data keys of the keyring with the fleet (Redis up, sealing key open); 0: local data keys only', labelNames: ['keyring'], registers: [registry],
      collect() { for (const [keyring, on] of sharedFor()) this.set({ keyring }, on ? 1 : 0); },
    });
  }

  /**
   * Request and item counts since the last scrape, by label values. prom-client hashes the label object on
   * every inc (~6 µs a request in the transit profile, children included); here a request costs one string
   * key and one Map lookup, and the sums reach the counters when /metrics is read (collect). The label
   * combinations are bounded by config (keys, tenants) and fixed sets (op, result).
   */
  private readonly pending = new Map<string, { op: string; key: string; tenant: string; result: string; requests: number; items: number }>();

  observe(op: string, key: string, tenant: string, result: string, seconds: number, items: number): void {
    const id = `${op}\0${key}\0${tenant}\0${result}`;
    let p = this.pending.get(id);
    if (!p) this.pending.set(id, (p = { op, key, tenant, result, requests: 0, items: 0 }));
    p.requests += 1;
    p.items += items;
    this.duration.observe({ op }, seconds);
  }

  private flush(): void {
    for (const p of this.pending.values()) {
      if (p.requests > 0) this.requests.inc({ op: p.op, key: p.key, tenant: p.tenant, result: p.result }, p.requests);
      if (p.items > 0) this.items.inc({ op: p.op, key: p.key }, p.items);
      p.requests = 0;
      p.items = 0;
    }
  }
}

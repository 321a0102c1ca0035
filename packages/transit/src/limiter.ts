/**
 * Per-tenant request rate limit. Transit takes the limiter as a function so the broker can hand it the
 * shared resilience token buckets; `localTokenBuckets` is the small stand-alone default.
 */
export type TenantLimiter = (tenant: string) => boolean;

export interface BucketOptions {
  /** Sustained requests per second per tenant; 0 disables the limit. */
  ratePerSecond: number;
  /** Largest burst. */
  burst: number;
  now?: () => number;
}

/**
 * One token bucket per tenant, refilled lazily on each take (no timers). `perTenant` overrides the rate and
 * burst of named tenants.
 */
export function localTokenBuckets(opts: BucketOptions, perTenant: Readonly<Record<string, Omit<BucketOptions, 'now'>>> = {}): TenantLimiter {
  const now = opts.now ?? (() => performance.now());
  const buckets = new Map<string, { tokens: number; at: number }>();
  return (tenant) => {
    const o = perTenant[tenant] ?? opts;
    if (o.ratePerSecond <= 0) return true;
    const t = now();
    let b = buckets.get(tenant);
    if (!b) buckets.set(tenant, (b = { tokens: o.burst, at: t }));
    b.tokens = Math.min(o.burst, b.tokens + ((t - b.at) / 1000) * o.ratePerSecond);
    b.at = t;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  };
}

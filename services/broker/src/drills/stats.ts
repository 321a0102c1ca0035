/** Figures for drill reports: percentiles, per-phase summaries and a per-second timeline. */

export interface Sample {
  /** ms since the drill started. */
  t: number;
  op: 'wrap' | 'unwrap';
  ms: number;
  ok: boolean;
  /** Error code, or 'wrong-answer' when an unwrap returned other bytes than the seed. */
  error?: string;
}

export interface PhaseSummary {
  calls: number;
  failed: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface TimelinePoint {
  /** Second since the drill started. */
  second: number;
  calls: number;
  failed: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export function summarize(samples: readonly Sample[]): PhaseSummary {
  const lat = samples.filter((s) => s.ok).map((s) => s.ms).sort((a, b) => a - b);
  const round = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);
  return { calls: samples.length, failed: samples.filter((s) => !s.ok).length, p50Ms: round(percentile(lat, 50)), p99Ms: round(percentile(lat, 99)) };
}

export function timeline(samples: readonly Sample[], seconds: number): TimelinePoint[] {
  const buckets: Sample[][] = Array.from({ length: Math.max(1, Math.ceil(seconds)) }, () => []);
  for (const s of samples) buckets[Math.min(buckets.length - 1, Math.floor(s.t / 1000))]?.push(s);
  return buckets.map((b, second) => ({ second, ...summarize(b) }));
}

/**
 * prom-client helpers. Every metric is prefixed `kekbroker_` and takes labels from fixed sets only
 * (op, provider, keyring, tenant from config, result code): never error text, never a key id the
 * caller controls, so cardinality is bounded by config size.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const PREFIX = 'kekbroker_';

/** Latency buckets from 0.1 ms to ~3 s: the apiserver's whole budget. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * How often the event-loop lag histogram samples, in ms. prom-client's default (10 ms) arms a timer that
 * wakes an idle process ~100 times a second: on a control-plane node that is CPU taken from kube-apiserver,
 * and under load each wake-up is a context switch on the request path (measured in docs/benchmarks.md).
 * 100 ms still gives a scrape every 15 s some 150 samples for `nodejs_eventloop_lag_p99_seconds`.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/** A registry with the process metrics and `kekbroker_build_info{version,node}` (always 1: join on it in queries). */
export function createRegistry(component: string, version = 'unknown'): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry, prefix: PREFIX, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  new Gauge({ name: `${PREFIX}build_info`, help: 'Always 1; labels say which kekbroker version runs on which Node.js', labelNames: ['version', 'node'], registers: [registry] })
    .set({ version, node: process.versions.node }, 1);
  return registry;
}

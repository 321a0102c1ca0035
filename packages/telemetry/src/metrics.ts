/**
 * prom-client helpers. Every metric is prefixed `kekbroker_` and takes labels from fixed sets only
 * (op, provider, keyring, tenant from config, result code): never error text, never a key id the
 * caller controls, so cardinality is bounded by config size.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const PREFIX = 'kekbroker_';

/** Latency buckets from 0.1 ms to ~3 s: the apiserver's whole budget. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function createRegistry(component: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
  return registry;
}

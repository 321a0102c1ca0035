/**
 * Wiring of packages/resilience into the broker: one guard (breaker + call budget) per configured provider,
 * shared by every keyring that uses it; their transitions and the keyrings' failover events become metrics
 * and log lines an SRE can act on (warn when something degrades, info when it recovers).
 */
import type { BrokerConfig } from '@kekbroker/config';
import type { KeyringEvent } from '@kekbroker/keyring';
import { ProviderGuard, type BudgetOptions, type GuardTransition } from '@kekbroker/resilience';
import type { Logger } from '@kekbroker/telemetry';
import type { BrokerMetrics } from './metrics';

/**
 * Call budgets when a provider section sets none: below each cloud's default quota for one account/project/
 * vault, so a restart storm or a retry loop cannot get the broker throttled (AWS KMS symmetric crypto: 10k+/s
 * per account-region; GCP KMS: 1k/s per project for crypto ops; Azure Key Vault RSA: ~400 per 10 s per vault).
 */
export const DEFAULT_BUDGETS: Readonly<Record<string, BudgetOptions>> = {
  'aws-kms': { ratePerSec: 1000, burst: 200 },
  'gcp-kms': { ratePerSec: 500, burst: 100 },
  'azure-keyvault': { ratePerSec: 30, burst: 40 },
};

export function buildGuards(cfg: BrokerConfig, log: Logger, metrics: () => BrokerMetrics): Map<string, ProviderGuard> {
  const guards = new Map<string, ProviderGuard>();
  for (const [id, p] of Object.entries(cfg.providers)) {
    const b = p.breaker;
    const budget = p.budget ?? DEFAULT_BUDGETS[p.type];
    const g = new ProviderGuard(id, {
      breaker: {
        errorThresholdPercentage: b.errorThresholdPercentage,
        volumeThreshold: b.volumeThreshold,
        rollingWindowMs: b.rollingWindowSeconds * 1000,
        halfOpenAfterMs: b.halfOpenAfterSeconds * 1000,
      },
      ...(budget ? { budget: { ratePerSec: budget.ratePerSec, burst: budget.burst } } : {}),
      retryBudget: { ratio: p.retryBudget.ratio, minPerSec: p.retryBudget.minPerSec },
    });
    g.on('transition', (t: GuardTransition) => {
      metrics().breakerTransitions.inc({ provider: id, to: t.to });
      if (t.to === 'open') log.warn({ provider: id, from: t.from, lastError: t.reason }, `circuit breaker of provider ${id} opened: failing over keyrings whose acting active it was`);
      else if (t.to === 'closed') log.info({ provider: id, from: t.from }, `circuit breaker of provider ${id} closed: provider healthy again (failback after each keyring's hold-down)`);
      else log.info({ provider: id, from: t.from }, `circuit breaker of provider ${id} half-open: trying one call`);
    });
    g.on('isolation', (e: { isolated: boolean }) => {
      if (e.isolated) log.warn({ provider: id }, `provider ${id} isolated by an operator: no traffic until restore`);
      else log.info({ provider: id }, `provider ${id} restored by an operator`);
    });
    guards.set(id, g);
  }
  return guards;
}

export function onKeyringEvent(e: KeyringEvent, log: Logger, metrics: BrokerMetrics): void {
  switch (e.type) {
    case 'degraded':
      for (const provider of e.missing) metrics.degradedEnvelopes.inc({ keyring: e.keyring, provider });
      log.debug({ keyring: e.keyring, missing: e.missing }, 'envelope sealed without every provider (degraded)');
      break;
    case 'passive-dropped':
      metrics.passiveDropped.inc({ keyring: e.keyring, provider: e.provider });
      break;
    case 'bad-answer':
      metrics.badAnswers.inc({ keyring: e.keyring, provider: e.provider });
      log.warn({ keyring: e.keyring, provider: e.provider, reason: e.reason }, `provider ${e.provider} returned a wrong answer; counted against its breaker`);
      break;
    case 'acting-active':
      metrics.actingChanges.inc({ keyring: e.keyring, to: e.change.to, cause: e.change.cause });
      (e.change.cause === 'failback' ? log.info.bind(log) : log.warn.bind(log))(
        { keyring: e.keyring, from: e.change.from, to: e.change.to, cause: e.change.cause, reason: e.change.reason },
        `keyring ${e.keyring}: acting active ${e.change.from} -> ${e.change.to} (${e.change.cause}); key_id unchanged`,
      );
      break;
    case 'misconfigured':
      if (e.reason) log.error({ keyring: e.keyring, provider: e.provider, reason: e.reason }, `provider ${e.provider} refuses its key: disabled, deleted or not granted (no automatic failover)`);
      else log.info({ keyring: e.keyring, provider: e.provider }, `provider ${e.provider} accepts its key again`);
      break;
    case 'version-refs-error':
      log.warn({ keyring: e.keyring, err: e.error }, 'could not read or write the version-ref state file; key_id continuity across a provider outage at start is at risk');
      break;
  }
}

export { TokenBucket, type TokenBucketOptions } from './token-bucket';
export {
  DEFAULT_BREAKER, ProviderGuard,
  type BreakerOptions, type BreakerState, type BudgetOptions, type GuardOptions, type GuardStatus, type GuardTransition,
} from './provider-guard';
export { boundedSignal, remainingMs } from './deadline';
export { DEFAULT_RETRY_BUDGET, RetryBudget, type RetryBudgetOptions } from './retry-budget';

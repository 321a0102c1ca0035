/**
 * Every Redis key and channel the fleet uses, in one place. Cluster needs keys that one Lua script or one
 * lock/entry pair touch to live in one hash slot: `{ha}` tags the leader lease, epoch and sealing keys
 * (the lease check and the sealing-key write are one script); `{<cache key>}` tags an L2 entry with its lock.
 * Cache keys are SHA-256 hashes (base64) of tenant + ciphertext: never a ciphertext, never a tenant name.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  get leader(): string {
    return `${this.prefix}{ha}:leader`;
  }
  get epoch(): string {
    return `${this.prefix}{ha}:epoch`;
  }
  sealing(keyring: string): string {
    return `${this.prefix}{ha}:sealing:${keyring}`;
  }
  versionRefs(keyring: string): string {
    return `${this.prefix}{ha}:version-refs:${keyring}`;
  }
  /** Lifecycle fields of a keyring (first-seen times, rotations, retirements): same slot as the lease. */
  lifecycle(keyring: string): string {
    return `${this.prefix}{ha}:lifecycle:${keyring}`;
  }
  usage(keyring: string): string {
    return `${this.prefix}{usage}:${keyring}`;
  }
  /** Presence records of the replicas (admin status). */
  get replicas(): string {
    return `${this.prefix}{ha}:replicas`;
  }
  get revoked(): string {
    return `${this.prefix}{ha}:revoked`;
  }
  entry(cacheKey: string): string {
    return `${this.prefix}{${cacheKey}}:l2`;
  }
  lock(cacheKey: string): string {
    return `${this.prefix}{${cacheKey}}:lock`;
  }
  /** Invalidations and sealing-key rotations: every replica. */
  get invalidateChannel(): string {
    return `${this.prefix}invalidate`;
  }
  /** "An L2 entry for this cache key was just written": wakes fleet-flight waiters. */
  get flightChannel(): string {
    return `${this.prefix}flight`;
  }
}

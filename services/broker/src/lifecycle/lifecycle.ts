/**
 * A keyring's lifecycle as the fleet sees it: when each generation (key_id) was first seen (key age), the last
 * rotation and the attempt in progress, the rotation schedule, and retired generations (refused on unwrap).
 * State lives in a LifecycleStore (Redis for a fleet, the state file, or memory); this class keeps the last
 * copy read so the data path checks a retirement with one map lookup.
 */
import type { Keyring } from '@kekbroker/keyring';
import type { LifecycleStore } from './store';

export interface RotationRecord {
  state: 'started' | 'done' | 'failed';
  by: 'schedule' | 'admin';
  replica: string;
  /** Leader epoch of the term that ran it (0 without Redis, or an admin request on any replica). */
  epoch: number;
  startedAt: string;
  finishedAt?: string;
  from?: string;
  to?: string;
  error?: string;
}

export interface RetiredRecord {
  keyId: string;
  at: string;
  by: string;
  reason: string;
  forced: boolean;
  /** Tenants that had read it within the quiet period when a forced retire overrode them. */
  overrode: string[];
}

export interface LifecycleView {
  keyring: string;
  keyId: string | undefined;
  /** When the fleet first saw the current generation (its rotation time when kekbroker rotated it). */
  currentSince: string | undefined;
  keyAgeSeconds: number | undefined;
  lastRotation: RotationRecord | undefined;
  rotationInProgress: RotationRecord | undefined;
  schedule: { periodSeconds: number; nextDue: string; overdue: boolean } | undefined;
  retired: RetiredRecord[];
}

/** A rotation attempt that has not finished after this long is considered dead (its replica was killed). */
export const STUCK_ROTATION_MS = 120_000;

const SEEN = 'seen:';
const RETIRED = 'retired:';
export const ATTEMPT = 'rotation:attempt';
export const LAST = 'rotation:last';

export function parseJson<T>(raw: string | undefined): T | undefined {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}

export class KeyringLifecycle {
  private readonly fields = new Map<string, Record<string, string>>();
  private readonly retiredIndex = new Map<string, Map<string, RetiredRecord>>();

  constructor(
    readonly store: LifecycleStore,
    private readonly keyrings: ReadonlyMap<string, Keyring>,
    /** Rotation period per keyring in seconds (0 = no schedule). */
    private readonly periods: ReadonlyMap<string, number>,
  ) {}

  /** Re-read one keyring's record from the store (after a write, a bus message, each refresh). */
  async reload(keyring: string): Promise<void> {
    const f = await this.store.load(keyring);
    this.fields.set(keyring, f);
    const idx = new Map<string, RetiredRecord>();
    for (const [k, v] of Object.entries(f)) {
      if (!k.startsWith(RETIRED)) continue;
      const r = parseJson<RetiredRecord>(v);
      if (r) idx.set(k.slice(RETIRED.length), r);
    }
    this.retiredIndex.set(keyring, idx);
  }

  /** Record the first sighting of a keyring's current key_id (idempotent; the earliest replica wins). */
  async observe(keyring: string, keyId: string | undefined, at = new Date()): Promise<void> {
    if (!keyId || this.fields.get(keyring)?.[SEEN + keyId]) return;
    await this.store.setIfAbsent(keyring, SEEN + keyId, at.toISOString());
    await this.reload(keyring);
  }

  /** The data path's check: is this generation retired? One map lookup. */
  retired(keyring: string, keyId: string): RetiredRecord | undefined {
    return this.retiredIndex.get(keyring)?.get(keyId);
  }

  raw(keyring: string, field: string): string {
    return this.fields.get(keyring)?.[field] ?? '';
  }

  firstSeen(keyring: string, keyId: string): string | undefined {
    return this.fields.get(keyring)?.[SEEN + keyId];
  }

  async retire(keyring: string, record: RetiredRecord): Promise<void> {
    await this.store.set(keyring, RETIRED + record.keyId, JSON.stringify(record));
    await this.reload(keyring);
  }

  period(keyring: string): number {
    return this.periods.get(keyring) ?? 0;
  }

  /**
   * When the next scheduled rotation is due: a period after the last completed rotation, or after the current
   * generation was first seen (a rotation made outside kekbroker counts too). After a failed attempt, retry
   * after min(period, 60 s) so a broken KMS is not hammered.
   */
  nextDueMs(keyring: string): number | undefined {
    const periodMs = this.period(keyring) * 1000;
    if (periodMs <= 0) return undefined;
    const k = this.keyrings.get(keyring);
    const last = parseJson<RotationRecord>(this.raw(keyring, LAST));
    const seen = k?.keyId ? this.firstSeen(keyring, k.keyId) : undefined;
    // The last rotation's start when it made the current key_id; else the current key_id's first sighting
    // (a rotation made outside kekbroker, or a first start) if that is later.
    const bases = last?.to !== undefined && last.to === k?.keyId ? [last.startedAt] : [last?.startedAt, seen].filter((x): x is string => Boolean(x));
    if (bases.length === 0) return undefined; // not ready yet: nothing to rotate
    let due = Math.max(...bases.map((x) => Date.parse(x))) + periodMs;
    const attempt = parseJson<RotationRecord>(this.raw(keyring, ATTEMPT));
    if (attempt?.state === 'failed' && attempt.finishedAt) due = Math.max(due, Date.parse(attempt.finishedAt) + Math.min(periodMs, 60_000));
    return due;
  }

  view(keyring: string, now = Date.now()): LifecycleView {
    const k = this.keyrings.get(keyring);
    const keyId = k?.keyId;
    const currentSince = keyId ? this.firstSeen(keyring, keyId) : undefined;
    const attempt = parseJson<RotationRecord>(this.raw(keyring, ATTEMPT));
    const periodSeconds = this.period(keyring);
    const due = this.nextDueMs(keyring);
    return {
      keyring,
      keyId,
      currentSince,
      keyAgeSeconds: currentSince ? Math.max(0, Math.round((now - Date.parse(currentSince)) / 1000)) : undefined,
      lastRotation: parseJson<RotationRecord>(this.raw(keyring, LAST)),
      rotationInProgress: attempt?.state === 'started' ? attempt : undefined,
      schedule: due !== undefined ? { periodSeconds, nextDue: new Date(due).toISOString(), overdue: now > due + overdueGraceMs(periodSeconds) } : undefined,
      retired: [...(this.retiredIndex.get(keyring)?.values() ?? [])].sort((a, b) => a.at.localeCompare(b.at)),
    };
  }
}

/** A scheduled rotation is overdue once it is this late: one refresh cycle of slack, at least a minute. */
export function overdueGraceMs(periodSeconds: number): number {
  return Math.max(60_000, (periodSeconds * 1000) / 10);
}

/**
 * Key-usage counters shared by the fleet: per keyring, generation (key_id), tenant and operation, a count and
 * the first and last time seen (epoch ms). Each replica adds its deltas in one pipelined script every few
 * seconds (never one Redis write per data-plane call). One hash per keyring; fields are
 * `<keyId>|<tenant>|<op>|n`, `...|f` (first seen) and `...|l` (last seen). Names come from config.
 */
import type { RedisKeys } from './keys';
import type { RedisClient, RedisHealth } from './redis-client';

/** ARGV: keyId|tenant|op prefix, count, first ms, last ms. Keeps the earliest first and the latest last. */
const ADD = `
local p = ARGV[1]
redis.call('HINCRBY', KEYS[1], p .. '|n', ARGV[2])
local f = redis.call('HGET', KEYS[1], p .. '|f')
if not f or tonumber(f) > tonumber(ARGV[3]) then redis.call('HSET', KEYS[1], p .. '|f', ARGV[3]) end
local l = redis.call('HGET', KEYS[1], p .. '|l')
if not l or tonumber(l) < tonumber(ARGV[4]) then redis.call('HSET', KEYS[1], p .. '|l', ARGV[4]) end
return 1`;

export interface UsageDelta {
  keyring: string;
  keyId: string;
  tenant: string;
  op: 'wrap' | 'unwrap';
  count: number;
  firstMs: number;
  lastMs: number;
}

export interface UsageRow {
  keyId: string;
  tenant: string;
  op: 'wrap' | 'unwrap';
  count: number;
  firstMs: number;
  lastMs: number;
}

export class RedisUsageCounters {
  constructor(private readonly redis: RedisClient, private readonly keys: RedisKeys, private readonly health: RedisHealth, private readonly timeoutMs: number) {}

  async add(deltas: readonly UsageDelta[]): Promise<void> {
    if (deltas.length === 0) return;
    const pipe = this.redis.pipeline();
    for (const d of deltas) pipe.eval(ADD, 1, this.keys.usage(d.keyring), `${d.keyId}|${d.tenant}|${d.op}`, String(d.count), String(d.firstMs), String(d.lastMs));
    const results = await this.health.run(this.timeoutMs, () => pipe.exec());
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0] as Error;
  }

  async load(keyring: string): Promise<UsageRow[]> {
    const h = await this.health.run(this.timeoutMs, () => this.redis.hgetall(this.keys.usage(keyring)));
    const rows = new Map<string, UsageRow>();
    for (const [field, value] of Object.entries(h)) {
      const parts = field.split('|');
      if (parts.length !== 4) continue;
      const [keyId, tenant, op, kind] = parts as [string, string, string, string];
      if (op !== 'wrap' && op !== 'unwrap') continue;
      const id = `${keyId}|${tenant}|${op}`;
      let row = rows.get(id);
      if (!row) rows.set(id, (row = { keyId, tenant, op, count: 0, firstMs: 0, lastMs: 0 }));
      if (kind === 'n') row.count = Number(value);
      else if (kind === 'f') row.firstMs = Number(value);
      else if (kind === 'l') row.lastMs = Number(value);
    }
    return [...rows.values()];
  }
}

/**
 * Every plaintext seed a test sends is recorded here; the last test of the run scans every log file
 * written by every process for them (raw hex and base64), and must find none.
 */
export const SEEDS: Buffer[] = [];

export function recordSeed(seed: Buffer): Buffer {
  SEEDS.push(Buffer.from(seed));
  return seed;
}

export function seedNeedles(): string[] {
  return SEEDS.flatMap((s) => [s.toString('hex'), s.toString('base64'), s.toString('base64url')]);
}

import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';

/** Scan the given log files for any recorded seed; fails listing the file and encoding found. */
export async function assertNoSeedsInLogs(files: readonly string[]): Promise<number> {
  assert.ok(SEEDS.length > 0, 'no seeds were recorded: the scan would prove nothing');
  let scanned = 0;
  for (const f of files) {
    const text = await fs.readFile(f, 'utf8').catch(() => '');
    scanned += text.length;
    for (const needle of seedNeedles()) assert.ok(!text.includes(needle), `plaintext seed found in ${f}`);
    for (const s of SEEDS) assert.ok(!Buffer.from(text, 'latin1').includes(s), `raw seed bytes found in ${f}`);
  }
  return scanned;
}

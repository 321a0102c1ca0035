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

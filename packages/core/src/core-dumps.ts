/**
 * Brokers and shims hold keys in memory, so a core dump would write them to disk. Node has no setrlimit
 * or prctl(PR_SET_DUMPABLE); the deploy files set the limit (systemd `LimitCORE=0`), and at start each
 * process also lowers its own RLIMIT_CORE to 0 (soft and hard) with util-linux `prlimit --pid`, which any
 * process may do to itself without privileges. The result is read back from /proc/self/limits, so what
 * is logged is what the kernel enforces.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface CoreDumpState {
  /** True when the soft and hard core-size limits are both 0. */
  disabled: boolean;
  /** What was found and done, for the start-up log line. */
  detail: string;
}

/** The soft and hard core file size limits, as /proc/self/limits prints them ("0", "unlimited", ...). */
export function coreLimits(): { soft: string; hard: string } | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max core file size'));
    const m = line ? /^Max core file size\s+(\S+)\s+(\S+)/.exec(line) : null;
    return m ? { soft: m[1] as string, hard: m[2] as string } : undefined;
  } catch {
    return undefined;
  }
}

export function disableCoreDumps(): CoreDumpState {
  const before = coreLimits();
  if (!before) return { disabled: false, detail: 'cannot read /proc/self/limits on this platform: disable core dumps in the service manager (ulimit -c 0)' };
  if (before.soft === '0' && before.hard === '0') return { disabled: true, detail: 'core dumps already disabled (RLIMIT_CORE 0)' };
  let why = '';
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), '--core=0:0'], { stdio: 'ignore', timeout: 5000 });
  } catch (e) {
    why = ` (prlimit failed: ${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  const after = coreLimits();
  if (after?.soft === '0') {
    return { disabled: true, detail: `core dumps disabled at start: RLIMIT_CORE was ${before.soft}/${before.hard}, now ${after.soft}/${after.hard}` };
  }
  return {
    disabled: false,
    detail: `core dumps are ENABLED (RLIMIT_CORE ${after?.soft ?? before.soft}): a crash would write keys to disk${why}; set LimitCORE=0 (systemd) or ulimit -c 0 before starting`,
  };
}

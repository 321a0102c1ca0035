/**
 * What every kekbroker command line shares: argument parsing whose mistakes read as one line (never a
 * stack trace), `--version`, and a main() wrapper that turns any fatal error into a message and a
 * non-zero exit at once, even while servers, timers or sockets would keep the event loop alive (a
 * process that cannot serve must die so that systemd or the kubelet restarts it and someone notices).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake on the command line: printed with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A fatal problem the operator must fix (config, files, ports): printed as is, exit code 1. */
export class FatalError extends Error {
  override readonly name = 'FatalError';
}


/** node:util parseArgs (strict), with its errors (unknown flag, missing value) turned into UsageErrors. */
export function parseCommandLine<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>({ strict: true, ...config });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/^Unknown option/, 'unknown option');
    throw new UsageError(msg);
  }
}

/** The "version" field of the package.json above a compiled file (dist/x.js -> ../package.json). */
export function packageVersion(distDir: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(distDir, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Run `main`; its resolved number is the exit code (undefined = keep running, e.g. a server). A rejection
 * prints `<name>: <message>` (UsageError: plus a --help hint, exit 2; anything else exit 1) and exits now.
 */
export function runMain(name: string, main: () => Promise<number | undefined>): void {
  main().then(
    (code) => {
      if (code !== undefined) process.exit(code);
    },
    (e: unknown) => {
      const err = e as Error;
      if (err instanceof UsageError) {
        console.error(`${name}: ${err.message}\nRun \`${name} --help\` for usage.`);
        process.exit(2);
      }
      const known = err instanceof FatalError || typeof (err as NodeJS.ErrnoException).code === 'string' || err.name === 'ConfigError' || err.name === 'KekError';
      console.error(`${name}: ${known ? err.message : err.stack ?? String(err)}`);
      process.exit(1);
    },
  );
}

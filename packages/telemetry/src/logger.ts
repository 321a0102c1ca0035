/**
 * pino JSON logs. Key material must never reach a log line (principle 5); the redact list is a second
 * line of defence behind "never pass plaintext to a logger" — it catches a whole request object logged by
 * mistake. Errors are logged by code and message only: SDK errors can carry request bodies.
 */
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

export const REDACT_PATHS = [
  'plaintext', '*.plaintext', '*.*.plaintext', 'Plaintext', '*.Plaintext',
  'key', '*.key', 'seed', '*.seed', 'dek', '*.dek',
  'token', '*.token', 'authorization', '*.authorization', 'req.headers.authorization', 'req.headers["x-vault-token"]',
  'secret', '*.secret', 'secretAccessKey', '*.secretAccessKey', 'clientSecret', '*.clientSecret',
];

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Write to this destination instead of stdout (tests). */
  destination?: pino.DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
    },
    opts.destination ?? pino.destination({ sync: false }),
  );
}

/** Code, message and (for our own errors) provider; never the cause chain's payloads. */
export function serializeError(e: unknown): Record<string, unknown> {
  if (typeof e !== 'object' || e === null) return { message: String(e) };
  const err = e as { name?: string; code?: unknown; message?: string; provider?: string; cause?: unknown };
  const out: Record<string, unknown> = { type: err.name, message: err.message };
  if (err.code !== undefined) out['code'] = err.code;
  if (err.provider) out['provider'] = err.provider;
  const cause = err.cause as { name?: string; code?: unknown } | undefined;
  if (cause && typeof cause === 'object') out['cause'] = { type: cause.name, code: cause.code };
  return out;
}

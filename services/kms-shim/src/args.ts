/** The shim's command line: flags and environment variables to ShimOptions, every mistake a UsageError. */
import path from 'node:path';
import { UsageError, packageVersion, parseCommandLine } from '@kekbroker/telemetry';
import type { ShimOptions } from './shim';
import { socketPathOf } from './socket';

export const NAME = 'kekbroker-kms-shim';
export const VERSION = packageVersion(__dirname);

export const HELP = `${NAME} ${VERSION} — Kubernetes KMS v2 plugin that forwards to a kekbroker broker

Usage: ${NAME} [options]

Options (flag, then environment variable, then default):
  --socket PATH          unix socket for kube-apiserver   $KEKBROKER_SHIM_SOCKET   ./run/kms.sock
  --broker HOST:PORT     broker endpoint; repeat or comma-separate for HA replicas
                                                          $KEKBROKER_BROKERS       127.0.0.1:7443
  --keyring NAME         keyring to use                   $KEKBROKER_KEYRING       default
  --tls-ca FILE          CA that signed the broker's certificate  (with --tls-cert/--tls-key: mTLS)
  --tls-cert FILE        this shim's client certificate (its identity = the tenant)
  --tls-key FILE         this shim's client key
  --tls-server-name NAME broker certificate name to verify (default: the endpoint host)
  --insecure-dev-tenant NAME   dev mode: no TLS, send tenant NAME in a header (loopback brokers only)
  --apiserver-timeout-ms N     the kms "timeout" in the EncryptionConfiguration      3000
  --budget-ms N          time allowed per call, below --apiserver-timeout-ms         2500
  --grace-ms N           keep Status OK this long while the broker is unreachable   20000
  --keepalive-ms N       ping socket clients this often; close those that do not answer 20000
  --metrics-listen HOST:PORT   serve /metrics and /healthz (off by default)
  --log-level LEVEL      fatal|error|warn|info|debug|trace                           info
  -h, --help             show this help
  -V, --version          print the version

EncryptionConfiguration: kms { apiVersion: v2, name: kekbroker, endpoint: unix://<socket>, timeout: 3s }`;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

function isLoopbackHost(endpoint: string): boolean {
  const host = endpoint.slice(0, endpoint.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Flags to options; every mistake is a UsageError naming the flag and what to do. */
export function parseShimArgs(args: string[], env: NodeJS.ProcessEnv): (ShimOptions & { logLevel: string }) | 'help' | 'version' {
  const { values } = parseCommandLine({
    args,
    options: {
      socket: { type: 'string' }, broker: { type: 'string', multiple: true }, keyring: { type: 'string' },
      'tls-ca': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'tls-server-name': { type: 'string' },
      'insecure-dev-tenant': { type: 'string' }, 'budget-ms': { type: 'string' }, 'grace-ms': { type: 'string' },
      'apiserver-timeout-ms': { type: 'string' }, 'keepalive-ms': { type: 'string' },
      'metrics-listen': { type: 'string' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'V' },
    },
  });
  if (values.help) return 'help';
  if (values.version) return 'version';
  const num = (v: string | undefined, def: number, name: string): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const brokers = (values.broker ?? (env['KEKBROKER_BROKERS'] ?? '127.0.0.1:7443').split(',')).flatMap((b) => b.split(',')).map((b) => b.trim()).filter(Boolean);
  if (brokers.length === 0) throw new UsageError('--broker: give at least one HOST:PORT');
  for (const b of brokers) if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/.test(b)) throw new UsageError(`--broker "${b}" is not HOST:PORT`);
  const tlsParts = [values['tls-ca'], values['tls-cert'], values['tls-key']];
  if (tlsParts.some(Boolean) && !tlsParts.every(Boolean)) throw new UsageError('--tls-ca, --tls-cert and --tls-key go together');
  const tls = tlsParts.every(Boolean);
  if (!tls && !values['insecure-dev-tenant']) throw new UsageError('give --tls-ca/--tls-cert/--tls-key (mTLS), or --insecure-dev-tenant NAME for a loopback dev broker');
  if (tls && values['insecure-dev-tenant']) throw new UsageError('--insecure-dev-tenant is for plaintext dev mode; with mTLS the certificate names the tenant: drop one of them');
  if (!tls) {
    const remote = brokers.filter((b) => !isLoopbackHost(b));
    if (remote.length) throw new UsageError(`--insecure-dev-tenant sends the tenant in plaintext and only talks to loopback brokers, not ${remote.join(', ')}; use --tls-ca/--tls-cert/--tls-key`);
  }
  const timeoutMs = num(values['apiserver-timeout-ms'], 3000, 'apiserver-timeout-ms');
  const budgetMs = num(values['budget-ms'], Math.min(2500, Math.floor((timeoutMs * 5) / 6)), 'budget-ms');
  if (budgetMs >= timeoutMs) {
    throw new UsageError(`--budget-ms ${budgetMs} must be below --apiserver-timeout-ms ${timeoutMs} (the kms "timeout" in the EncryptionConfiguration), or kube-apiserver gives up before the shim answers; leave ~20% for the trip back`);
  }
  const logLevel = values['log-level'] ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join('|')}, got "${logLevel}"`);
  let metricsListen: ShimOptions['metricsListen'];
  if (values['metrics-listen']) {
    const i = values['metrics-listen'].lastIndexOf(':');
    if (i < 1) throw new UsageError(`--metrics-listen must be HOST:PORT, got "${values['metrics-listen']}"`);
    metricsListen = { host: values['metrics-listen'].slice(0, i).replace(/^\[|\]$/g, ''), port: num(values['metrics-listen'].slice(i + 1), 0, 'metrics-listen port') };
  }
  return {
    socket: path.resolve(socketPathOf(values.socket ?? env['KEKBROKER_SHIM_SOCKET'] ?? './run/kms.sock')),
    brokers,
    keyring: values.keyring ?? env['KEKBROKER_KEYRING'] ?? 'default',
    budgetMs,
    graceMs: num(values['grace-ms'], 20_000, 'grace-ms'),
    keepaliveMs: num(values['keepalive-ms'], 20_000, 'keepalive-ms'),
    tls: tls
      ? { caFile: values['tls-ca'] as string, certFile: values['tls-cert'] as string, keyFile: values['tls-key'] as string, serverName: values['tls-server-name'] }
      : undefined,
    devTenant: values['insecure-dev-tenant'],
    metricsListen,
    logLevel,
    version: VERSION,
  };
}


#!/usr/bin/env node
/** kekbroker-kms-shim: the KMS v2 plugin kube-apiserver talks to; forwards to the broker. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { disableCoreDumps } from '@kekbroker/core';
import { createLogger } from '@kekbroker/telemetry';
import { Shim, type ShimOptions } from './shim';
import { socketPathOf } from './socket';

const HELP = `kekbroker-kms-shim — Kubernetes KMS v2 plugin that forwards to a kekbroker broker

Usage: kekbroker-kms-shim [options]

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
  --budget-ms N          time allowed per call, below the apiserver timeout (3 s)   2500
  --grace-ms N           keep Status OK this long while the broker is unreachable   20000
  --metrics-listen HOST:PORT   serve /metrics and /healthz (off by default)
  --log-level LEVEL      fatal|error|warn|info|debug|trace                           info
  -h, --help             show this help

EncryptionConfiguration: kms { apiVersion: v2, name: kekbroker, endpoint: unix://<socket>, timeout: 3s }`;

function parse(): ShimOptions & { logLevel: string } {
  const { values } = parseArgs({
    options: {
      socket: { type: 'string' }, broker: { type: 'string', multiple: true }, keyring: { type: 'string' },
      'tls-ca': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'tls-server-name': { type: 'string' },
      'insecure-dev-tenant': { type: 'string' }, 'budget-ms': { type: 'string' }, 'grace-ms': { type: 'string' },
      'metrics-listen': { type: 'string' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const env = process.env;
  const num = (v: string | undefined, def: number, name: string): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const brokers = (values.broker ?? (env['KEKBROKER_BROKERS'] ?? '127.0.0.1:7443').split(',')).flatMap((b) => b.split(',')).map((b) => b.trim()).filter(Boolean);
  const tlsParts = [values['tls-ca'], values['tls-cert'], values['tls-key']];
  if (tlsParts.some(Boolean) && !tlsParts.every(Boolean)) throw new Error('--tls-ca, --tls-cert and --tls-key go together');
  if (!tlsParts.every(Boolean) && !values['insecure-dev-tenant']) throw new Error('give --tls-ca/--tls-cert/--tls-key (mTLS), or --insecure-dev-tenant NAME for a loopback dev broker');
  let metricsListen: ShimOptions['metricsListen'];
  if (values['metrics-listen']) {
    const i = values['metrics-listen'].lastIndexOf(':');
    metricsListen = { host: values['metrics-listen'].slice(0, i), port: num(values['metrics-listen'].slice(i + 1), 0, 'metrics-listen port') };
  }
  return {
    socket: path.resolve(socketPathOf(values.socket ?? env['KEKBROKER_SHIM_SOCKET'] ?? './run/kms.sock')),
    brokers,
    keyring: values.keyring ?? env['KEKBROKER_KEYRING'] ?? 'default',
    budgetMs: num(values['budget-ms'], 2500, 'budget-ms'),
    graceMs: num(values['grace-ms'], 20_000, 'grace-ms'),
    tls: tlsParts.every(Boolean)
      ? { caFile: values['tls-ca'] as string, certFile: values['tls-cert'] as string, keyFile: values['tls-key'] as string, serverName: values['tls-server-name'] }
      : undefined,
    devTenant: values['insecure-dev-tenant'],
    metricsListen,
    logLevel: values['log-level'] ?? 'info',
  };
}

async function main(): Promise<void> {
  let opts: ReturnType<typeof parse>;
  try {
    opts = parse();
  } catch (e) {
    console.error(`kekbroker-kms-shim: ${(e as Error).message}\nRun with --help for usage.`);
    process.exitCode = 2;
    return;
  }
  const log = createLogger({ name: 'kekbroker-kms-shim', level: opts.logLevel });
  const coreDumps = disableCoreDumps(); // the process holds keys: no core file may hold them
  if (coreDumps.disabled) log.info(coreDumps.detail);
  else log.warn(coreDumps.detail);
  process.on('uncaughtException', (e) => {
    log.fatal({ err: e }, 'uncaught exception; exiting');
    process.exit(1);
  });
  const shim = await Shim.start(opts, log);
  const stop = (sig: string): void => {
    log.info({ signal: sig }, 'signal received');
    void shim.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  console.error(`kekbroker-kms-shim: ${(e as Error).message}`);
  process.exitCode = 1;
});

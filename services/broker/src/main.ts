#!/usr/bin/env node
/**
 * kekbroker-broker: run a broker replica, or check a config file.
 *   kekbroker-broker [--config FILE]         run (default $KEKBROKER_CONFIG or ./kekbroker.yaml)
 *   kekbroker-broker check [--config FILE]   validate the config, print every problem, exit 0/1
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '@kekbroker/config';
import { disableCoreDumps } from '@kekbroker/core';
import { createLogger } from '@kekbroker/telemetry';
import { Broker } from './broker';
import { providerSchemas } from './provider-registry';

const HELP = `kekbroker-broker — the kekbroker KEK broker

Usage:
  kekbroker-broker [--config FILE]          run a broker replica
  kekbroker-broker check [--config FILE]    validate FILE and exit (0 = valid)
  kekbroker-broker --help

Options:
  -c, --config FILE   config file (default: $KEKBROKER_CONFIG, else ./kekbroker.yaml)
  -h, --help          show this help

Signals: SIGTERM/SIGINT drain in-flight calls and exit; SIGHUP reloads transit identities and policy file.
Docs: docs/configuration.md, docs/operations.md`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  if (!['run', 'check'].includes(command) || positionals.length > 1) {
    console.error(`unknown command "${positionals.join(' ')}"\n\n${HELP}`);
    return 2;
  }
  const file = values.config ?? process.env['KEKBROKER_CONFIG'] ?? 'kekbroker.yaml';
  let cfg;
  try {
    cfg = await loadConfig(file, providerSchemas());
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 1;
    }
    throw e;
  }
  if (command === 'check') {
    console.log(`${file}: OK (${Object.keys(cfg.keyrings).length} keyring(s), ${Object.keys(cfg.providers).length} provider(s), ${Object.keys(cfg.tenants).length} tenant(s))`);
    return 0;
  }
  const log = createLogger({ name: 'kekbroker-broker', level: cfg.log.level });
  const coreDumps = disableCoreDumps(); // the process holds keys: no core file may hold them
  if (coreDumps.disabled) log.info(coreDumps.detail);
  else log.warn(coreDumps.detail);
  process.on('uncaughtException', (e) => {
    log.fatal({ err: e }, 'uncaught exception; exiting');
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => log.error({ err: e }, 'unhandled rejection'));
  const broker = await Broker.start(cfg, log);
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      log.info({ signal: sig }, 'signal received');
      void broker.stop().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      loadConfig(file, providerSchemas()).then(
        (next) => broker.reload(next),
        (e: unknown) => log.error({ err: e }, 'SIGHUP: config reload failed; keeping the running config'),
      );
    });
  });
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`kekbroker-broker: ${(e as Error).message}`);
    process.exitCode = 1;
  },
);

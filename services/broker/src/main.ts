#!/usr/bin/env node
/**
 * kekbroker-broker: run a broker replica, or check a config file.
 *   kekbroker-broker [--config FILE]         run (default $KEKBROKER_CONFIG or ./kekbroker.yaml)
 *   kekbroker-broker check [--config FILE]   validate the config and what it references, exit 0/1
 * Anything that stops the broker from serving exits non-zero at once with the config path and the fix.
 */
import { ConfigError, loadConfig } from '@kekbroker/config';
import { disableCoreDumps } from '@kekbroker/core';
import { FatalError, UsageError, createLogger, packageVersion, parseCommandLine, runMain } from '@kekbroker/telemetry';
import { Broker } from './broker';
import { preflight } from './preflight';
import { providerSchemas } from './provider-registry';

const NAME = 'kekbroker-broker';
const VERSION = packageVersion(__dirname);

const HELP = `${NAME} ${VERSION} — the kekbroker KEK broker

Usage:
  ${NAME} [--config FILE]          run a broker replica
  ${NAME} check [--config FILE]    validate FILE, the files it names (and their modes) and the
                                   environment variables it names; exit 0 = valid
  ${NAME} --help | --version

Options:
  -c, --config FILE   config file (default: $KEKBROKER_CONFIG, else ./kekbroker.yaml)
  -h, --help          show this help
  -V, --version       print the version

Signals: SIGTERM/SIGINT drain in-flight calls and exit; SIGHUP reloads transit identities and policy file.
Docs: docs/configuration.md, docs/operations.md`;

async function main(): Promise<number | undefined> {
  const { values, positionals } = parseCommandLine({
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'V' } },
    args: process.argv.slice(2),
    allowPositionals: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.version) {
    console.log(VERSION);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  if (!['run', 'check'].includes(command) || positionals.length > 1) throw new UsageError(`unknown command "${positionals.join(' ')}" (commands: run, check)`);
  const file = values.config ?? process.env['KEKBROKER_CONFIG'] ?? 'kekbroker.yaml';
  let cfg;
  try {
    cfg = await loadConfig(file, providerSchemas());
  } catch (e) {
    if (e instanceof ConfigError) throw new FatalError(`${e.message}\nFix the file (keys: docs/configuration.md), then run \`${NAME} check --config ${file}\`.`);
    throw e;
  }
  // `check` may run next to the live broker it is about to restart: only a start needs the ports free.
  const pre = await preflight(cfg, { ports: command === 'run' });
  const log = command === 'run' ? createLogger({ name: NAME, level: cfg.log.level }) : undefined;
  if (log) {
    const coreDumps = disableCoreDumps(); // the process holds keys: no core file may hold them
    if (coreDumps.disabled) log.info(coreDumps.detail);
    else log.warn(coreDumps.detail);
  }
  for (const w of pre.warnings) {
    if (log) log.warn({ config: file }, w);
    else console.error(`${file}: warning: ${w}`);
  }
  if (pre.problems.length) throw new FatalError(`${file}: ${pre.problems.length} problem(s):\n${pre.problems.map((p) => `  - ${p}`).join('\n')}`);
  if (!log) {
    console.log(`${file}: OK (${Object.keys(cfg.keyrings).length} keyring(s), ${Object.keys(cfg.providers).length} provider(s), ${Object.keys(cfg.tenants).length} tenant(s))`);
    return 0;
  }
  process.on('uncaughtException', (e) => {
    log.fatal({ err: e }, 'uncaught exception; exiting');
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => log.error({ err: e }, 'unhandled rejection'));
  let broker: Broker;
  try {
    broker = await Broker.start(cfg, log, VERSION);
  } catch (e) {
    log.fatal({ err: e, config: file }, 'broker cannot start; exiting');
    throw e;
  }
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

runMain(NAME, main);

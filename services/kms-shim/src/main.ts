#!/usr/bin/env node
/** kekbroker-kms-shim: the KMS v2 plugin kube-apiserver talks to; forwards to the broker. */
import { disableCoreDumps } from '@kekbroker/core';
import { FatalError, createLogger, runMain } from '@kekbroker/telemetry';
import { HELP, NAME, VERSION, parseShimArgs } from './args';
import { Shim } from './shim';

async function main(): Promise<number | undefined> {
  const opts = parseShimArgs(process.argv.slice(2), process.env);
  if (opts === 'help') {
    console.log(HELP);
    return 0;
  }
  if (opts === 'version') {
    console.log(VERSION);
    return 0;
  }
  const log = createLogger({ name: NAME, level: opts.logLevel });
  const coreDumps = disableCoreDumps(); // the process holds keys: no core file may hold them
  if (coreDumps.disabled) log.info(coreDumps.detail);
  else log.warn(coreDumps.detail);
  process.on('uncaughtException', (e) => {
    log.fatal({ err: e }, 'uncaught exception; exiting');
    process.exit(1);
  });
  let shim: Shim;
  try {
    shim = await Shim.start(opts, log);
  } catch (e) {
    log.fatal({ err: e }, 'kms-shim cannot start; exiting');
    throw new FatalError((e as Error).message);
  }
  const stop = (sig: string): void => {
    log.info({ signal: sig }, 'signal received');
    void shim.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return undefined;
}

runMain(NAME, main);

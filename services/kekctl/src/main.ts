#!/usr/bin/env node
/**
 * kekctl: the SRE CLI over the kekbroker admin API. Thin: parse, call, print, exit with a code scripts can use
 * (0 done, 1 the broker refused or failed it, 2 bad command line, 3 admin API unreachable or token refused,
 * 4 a drill ran and failed).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AdminClient, CliError, EXIT, resolveTarget } from './client';
import { COMMANDS, type Command } from './commands';

const GLOBAL_OPTIONS = {
  addr: { type: 'string', help: 'admin API address (default $KEKBROKER_ADMIN_ADDR, else http://127.0.0.1:7481)' },
  'token-file': { type: 'string', help: 'file holding an admin token (default $KEKBROKER_ADMIN_TOKEN_FILE)' },
  config: { type: 'string', help: 'JSON file with {"addr","tokenFile"} (default $KEKCTL_CONFIG, else ~/.config/kekctl.json)' },
  output: { type: 'string', short: 'o', help: 'table (default) or json' },
  help: { type: 'boolean', short: 'h', help: 'show help' },
  version: { type: 'boolean', help: 'print the version' },
} as const;

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function optionHelp(opts: Record<string, { help: string; short?: string }>): string {
  return Object.entries(opts).map(([k, o]) => `  ${o.short ? `-${o.short}, ` : '    '}--${k.padEnd(12)} ${o.help}`).join('\n');
}

function mainHelp(): string {
  return `kekctl ${version()} — operate a kekbroker fleet through its admin API

Usage: kekctl COMMAND [ARGS] [OPTIONS]

Commands:
${COMMANDS.map((c) => `  ${`${c.name} ${c.args}`.padEnd(36)} ${c.summary}`).join('\n')}

Options:
${optionHelp(GLOBAL_OPTIONS)}

Exit codes: 0 done, 1 the broker refused or failed the operation, 2 bad command line,
3 admin API unreachable or token refused (nothing was done), 4 a drill ran and failed.
\`kekctl COMMAND --help\` shows one command.`;
}

function commandHelp(c: Command): string {
  return `kekctl ${c.name} ${c.args}\n\n${c.summary}\n\nOptions:\n${optionHelp({ ...(c.options ?? {}), ...GLOBAL_OPTIONS })}`;
}

async function main(argv: string[]): Promise<number> {
  const name = argv.find((a) => !a.startsWith('-'));
  const command = COMMANDS.find((c) => c.name === name);
  const options = { ...GLOBAL_OPTIONS, ...(command?.options ?? {}) } as NonNullable<ParseArgsConfig['options']>;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new CliError(`${(e as Error).message}\nRun \`kekctl ${command ? `${command.name} ` : ''}--help\`.`, EXIT.usage);
  }
  const o = parsed.values as Record<string, string | boolean | undefined>;
  if (o['version']) {
    console.log(version());
    return EXIT.ok;
  }
  if (!command) {
    if (o['help'] || name === undefined) {
      console.log(mainHelp());
      return o['help'] ? EXIT.ok : EXIT.usage;
    }
    throw new CliError(`unknown command "${name}"\n\n${mainHelp()}`, EXIT.usage);
  }
  if (o['help']) {
    console.log(commandHelp(command));
    return EXIT.ok;
  }
  const output = (o['output'] as string | undefined) ?? 'table';
  if (output !== 'table' && output !== 'json') throw new CliError(`--output must be table or json, not "${output}"`, EXIT.usage);
  const target = await resolveTarget({ addr: o['addr'] as string | undefined, tokenFile: o['token-file'] as string | undefined, config: o['config'] as string | undefined });
  const r = await command.run(new AdminClient(target), parsed.positionals.slice(1), o);
  console.log(output === 'json' ? JSON.stringify(r.json, null, 2) : r.text);
  return r.exitCode ?? EXIT.ok;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof CliError) {
      console.error(`kekctl: ${e.message}`);
      process.exitCode = e.exitCode;
    } else {
      console.error(`kekctl: unexpected error: ${(e as Error).stack ?? String(e)}`);
      process.exitCode = EXIT.failed;
    }
  },
);

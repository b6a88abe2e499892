#!/usr/bin/env node
/**
 * The `checkpointd` command. Exit codes: 0 success; 1 failure at run time;
 * 2 bad configuration or usage; 3 the journal is damaged in a way that needs
 * an operator (see the README's runbook).
 */
import { Command, CommanderError, Option } from 'commander';
import { BadRequestError, ConfigError, JournalCorruptError } from '../errors.js';
import { Roles } from '../api/index.js';
import { runCommand } from './run.js';
import { tokenCreateCommand } from './token-create.js';

/** Exit statuses, documented in the README. */
export const ExitCode = { ok: 0, failure: 1, usage: 2, journalCorrupt: 3 } as const;

const DefaultConfig = 'config/default.json';

function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`checkpointd: ${message}\n`);
  if (err instanceof ConfigError) process.exit(ExitCode.usage);
  if (err instanceof JournalCorruptError) process.exit(ExitCode.journalCorrupt);
  if (err instanceof BadRequestError) process.exit(ExitCode.usage);
  process.exit(ExitCode.failure);
}

const program = new Command('checkpointd')
  .description('Host-node daemon: journals commits to a shared FileVault, makes checkpoints, fails over.')
  .exitOverride()
  .showHelpAfterError();

program
  .command('run')
  .description('run the daemon in the foreground (systemd runs this)')
  .option('-c, --config <file>', 'configuration file', DefaultConfig)
  .action(async (options: { config: string }) => runCommand(options.config));

const token = program.command('token').description('manage API tokens');
token
  .command('create')
  .description('add a token to auth.tokensFile and print only the token on stdout')
  .option('-c, --config <file>', 'configuration file', DefaultConfig)
  .requiredOption('--name <name>', 'a name for the token (who or what uses it)')
  .addOption(new Option('--role <role>', 'what the token may do').choices(Roles).makeOptionMandatory())
  .action(async (options: { config: string; name: string; role: string }) => tokenCreateCommand(options));

program
  .command('verify')
  .description("check a checkpoint file: its structure, manifest, and every entry's size and SHA-256 (no daemon needed)")
  .argument('<file>', 'checkpoint file (FileVault/checkpoint/Checkpoint-NNNNNNNNN)')
  .option('--json', 'print the result as JSON')
  .action(async (file: string, options: { json?: boolean }) => {
    const { verifyCommand } = await import('./verify.js');
    if (!(await verifyCommand(file, options))) process.exitCode = ExitCode.failure;
  });

program
  .command('export')
  .description('write each space of a checkpoint as DIR/<spaceId>.ndjson, plus DIR/manifest.json, verifying it on the way (no daemon needed)')
  .argument('<file>', 'checkpoint file')
  .requiredOption('--out <dir>', 'folder to write into (created if missing)')
  .option('--force', 'write into a folder that is not empty')
  .option('--json', 'print the result as JSON')
  .action(async (file: string, options: { out: string; force?: boolean; json?: boolean }) => {
    const { exportCommand } = await import('./export.js');
    await exportCommand(file, options);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
  fail(err);
}

#!/usr/bin/env -S node --max-semi-space-size=64
/**
 * The `checkpointd` command: `run` (the daemon), the local commands `verify`,
 * `export` and `token create`, and the client commands that talk to a daemon's
 * API (`status`, `checkpoint …`, `switchover`, `pause`, `resume`).
 *
 * Exit codes (scripts may rely on them):
 * - 0 success
 * - 1 failure: the daemon failed (5xx other than 503), a download whose
 *   SHA-256 does not match, a checkpoint that does not verify, a local file
 *   that would be overwritten (export, download without --force)
 * - 2 usage or bad configuration, or the API refused the request as wrong
 *   (400, 413, 422 and other 4xx not listed below)
 * - 3 the journal is damaged in a way that needs an operator (docs/OPERATIONS.md, runbook)
 * - 4 the daemon cannot be reached: connection refused, unknown host, TLS
 *   failure, timeout, or the connection broke mid-answer
 * - 5 the token was refused (401) or lacks the role (403)
 * - 6 not found (404): no such checkpoint, space or standby
 * - 7 try again, or elsewhere: 409 (a conflict with the current state), 507 (the FileVault is full) or
 *   503 (not the primary, fenced, still starting); the message says which
 */
import { Command, CommanderError, Option } from 'commander';
import { ConfigEnv, DefaultConfigFile, DefaultDaemonUrl, MaxDescriptionLength } from '../config/index.js';
import { BadRequestError, ConfigError, JournalCorruptError } from '../errors.js';
import { Version } from '../version.js';
import { ApiClient, ApiProblemError, CaEnv, DaemonUnreachableError, TokenEnv, UrlEnv, type ClientOptions } from './api-client.js';
import { writeJson } from './format.js';

/** Exit statuses (see the comment at the top of this file), documented in docs/OPERATIONS.md "Exit codes". */
export const ExitCode = { ok: 0, failure: 1, usage: 2, journalCorrupt: 3, unreachable: 4, refused: 5, notFound: 6, tryAgain: 7 } as const;

/** The exit status for an error status the API answered with. */
function exitCodeForStatus(status: number): number {
  if (status === 401 || status === 403) return ExitCode.refused;
  if (status === 404) return ExitCode.notFound;
  if (status === 409 || status === 503 || status === 507) return ExitCode.tryAgain;
  if (status >= 400 && status < 500) return ExitCode.usage;
  return ExitCode.failure;
}

/** The `--config` option of `run` and `token create`: no default value, so that CHECKPOINTD_CONFIG and then the default path apply (config-file.ts). */
const ConfigOption = ['-c, --config <file>', `configuration file (default: $${ConfigEnv} if set, else ${DefaultConfigFile})`] as const;

/** Help text ending a command's `--help`: its examples, one a line. */
const examples = (...lines: string[]): string => `\nExample${lines.length === 1 ? '' : 's'}:\n${lines.map((line) => `  ${line}`).join('\n')}\n`;

function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`checkpointd: ${message}\n`);
  if (err instanceof ConfigError) process.exit(ExitCode.usage);
  if (err instanceof JournalCorruptError) process.exit(ExitCode.journalCorrupt);
  if (err instanceof BadRequestError) process.exit(ExitCode.usage);
  if (err instanceof ApiProblemError) process.exit(exitCodeForStatus(err.status));
  if (err instanceof DaemonUnreachableError) process.exit(ExitCode.unreachable);
  process.exit(ExitCode.failure);
}

const program = new Command('checkpointd')
  .description('Host-node daemon: journals commits to a shared FileVault, makes checkpoints, fails over.')
  .version(Version, '-V, --version', 'print the version of checkpointd and exit')
  .exitOverride()
  .showHelpAfterError()
  .addHelpText(
    'after',
    examples(
      'checkpointd run --config /etc/checkpointd/checkpointd.json',
      `export ${TokenEnv}=$(cat /var/lib/checkpointd/admin.token)`,
      'checkpointd status --url https://node-a:8470 --ca /etc/checkpointd/ca.pem',
      'checkpointd checkpoint --help',
    ),
  );

program
  .command('run')
  .description('run the daemon in the foreground (systemd runs this)')
  .option(...ConfigOption)
  .addHelpText('after', examples('checkpointd run', `${ConfigEnv}=/srv/node-a.json checkpointd run`, 'checkpointd run --config config/default.json'))
  .action(async (options: { config?: string }) => {
    // Loaded on use: the daemon's modules would slow every client command's start.
    const { runCommand } = await import('./run.js');
    await runCommand(options.config);
  });

const tokenCreateExample = 'sudo -u checkpointd checkpointd token create --name ci --role member > ci.token';
const token = program.command('token').description('manage API tokens').addHelpText('after', examples(tokenCreateExample));
token
  .command('create')
  .description('add a token to auth.tokensFile and print only the token on stdout')
  .option(...ConfigOption)
  .requiredOption('--name <name>', 'a name for the token (who or what uses it)')
  .requiredOption('--role <role>', 'what the token may do: collection-admin (everything) or member (data only)')
  .addHelpText('after', examples(tokenCreateExample, 'checkpointd token create --config config/default.json --name ops --role collection-admin'))
  .action(async (options: { config?: string; name: string; role: string }) => {
    // The API's modules load on use, so that client commands start fast.
    const { Roles } = await import('../api/index.js');
    if (!(Roles as readonly string[]).includes(options.role)) throw new ConfigError(`--role must be one of ${Roles.join(', ')}, not ${JSON.stringify(options.role)}`);
    const { tokenCreateCommand } = await import('./token-create.js');
    await tokenCreateCommand(options);
  });

program
  .command('verify')
  .description("check a checkpoint file: its structure, manifest, and every entry's size and SHA-256 (no daemon needed)")
  .argument('<file>', 'checkpoint file (FileVault/checkpoint/Checkpoint-NNNNNNNNN)')
  .option('--json', 'print the result as JSON')
  .addHelpText('after', examples('checkpointd verify /mnt/filevault/checkpoint/Checkpoint-000000003'))
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
  .addHelpText('after', examples('checkpointd export Checkpoint-000000003 --out /tmp/checkpoint-3', 'head -n 1 /tmp/checkpoint-3/test.ndjson'))
  .action(async (file: string, options: { out: string; force?: boolean; json?: boolean }) => {
    const { exportCommand } = await import('./export.js');
    await exportCommand(file, options);
  });

const ClientHelp = `
The daemon is --url, else $${UrlEnv}, else ${DefaultDaemonUrl}.
The token (collection-admin) is read from --token-file FILE, else $${TokenEnv};
never put a token on the command line. A private CA's PEM bundle for an
https URL: --ca FILE, else $${CaEnv}.

Exit codes: 0 ok; 1 failure; 2 usage or bad request (400/413/422);
4 daemon unreachable; 5 token refused (401/403); 6 not found (404);
7 try again or elsewhere (409/503/507).`;

/** A client command with the options every one of them shares, and help ending in `example`. */
function clientCommand(parent: Command, name: string, description: string, example: string): Command {
  return parent
    .command(name)
    .description(description)
    .addOption(new Option('--url <url>', "the daemon's API base URL").env(UrlEnv).default(DefaultDaemonUrl))
    .option('--token-file <file>', `read the API token from this file (else $${TokenEnv})`)
    .addOption(new Option('--ca <file>', "PEM CA bundle that signed the daemon's https certificate (a private CA)").env(CaEnv))
    .option('--json', "print the API's JSON answer on stdout (for scripts)")
    .addHelpText('after', `\nExample:\n  export ${TokenEnv}=$(cat /var/lib/checkpointd/admin.token)\n  ${example}\n${ClientHelp}`);
}

/** Run `work` with a client from the shared options; with --json an API problem is printed on stdout as well. */
async function withClient(options: ClientOptions, work: (client: ApiClient) => Promise<void>): Promise<void> {
  const client = await ApiClient.open(options);
  try {
    await work(client);
  } catch (err) {
    if (options.json === true && err instanceof ApiProblemError && err.problem !== null) writeJson(err.problem);
    throw err;
  }
}

type CheckpointOptions = ClientOptions & { space?: string };

clientCommand(program, 'status', "the daemon's role, seq, journal, checkpoints and failover state", 'checkpointd status --url https://node-a:8470 --ca /etc/checkpointd/ca.pem')
  .option('--cluster', 'one row per node the daemon knows of: name, URL, role, epoch, state, lag, last heartbeat, newest checkpoint')
  .action(async (options: ClientOptions & { cluster?: boolean }) =>
    withClient(options, async (client) => {
      const { statusCommand } = await import('./status.js');
      await statusCommand(client, options);
    }),
);

const checkpoint = program
  .command('checkpoint')
  .description('list, create, get, download, restore and delete checkpoints (through the API)')
  .addHelpText('after', examples(`export ${TokenEnv}=$(cat /var/lib/checkpointd/admin.token)`, 'checkpointd checkpoint list', 'checkpointd checkpoint download 3 --out /backup/Checkpoint-000000003'));
clientCommand(checkpoint, 'list', 'list checkpoints: all of them, or those that cover one space', 'checkpointd checkpoint list --space test')
  .option('--space <id>', 'only the checkpoints that cover this space')
  .action(async (options: CheckpointOptions) =>
    withClient(options, async (client) => {
      const { listCommand } = await import('./checkpoint-commands.js');
      await listCommand(client, options);
    }),
  );
clientCommand(checkpoint, 'create', 'make a checkpoint now: of one space with --space, else of the whole collection', 'checkpointd checkpoint create --description "before the upgrade"')
  .option('--space <id>', 'checkpoint only this space (space scope)')
  .option('--description <text>', `a description kept in the checkpoint (at most ${MaxDescriptionLength} characters)`)
  .action(async (options: CheckpointOptions & { description?: string }) =>
    withClient(options, async (client) => {
      const { createCommand } = await import('./checkpoint-commands.js');
      await createCommand(client, options);
    }),
  );
clientCommand(checkpoint, 'get', 'show one checkpoint: scope, spaces, trigger, time, seq, size, SHA-256', 'checkpointd checkpoint get 3 --json')
  .argument('<id>', 'checkpoint id')
  .option('--space <id>', 'through the space route (404 unless the checkpoint covers the space)')
  .action(async (id: string, options: CheckpointOptions) =>
    withClient(options, async (client) => {
      const { getCommand } = await import('./checkpoint-commands.js');
      await getCommand(client, id, options);
    }),
  );
clientCommand(
  checkpoint,
  'download',
  'stream a checkpoint to a file, resuming a broken download (FILE.partial) and checking its SHA-256',
  'checkpointd checkpoint download 3 --out /backup/Checkpoint-000000003',
)
  .argument('<id>', 'checkpoint id')
  .option('--out <file>', 'file to write (default: the name the daemon gives, Checkpoint-NNNNNNNNN, in the current folder)')
  .option('--force', 'replace the file if it exists')
  .action(async (id: string, options: ClientOptions & { out?: string; force?: boolean }) =>
    withClient(options, async (client) => {
      const { downloadCommand } = await import('./checkpoint-download.js');
      await downloadCommand(client, id, options);
    }),
  );
clientCommand(
  checkpoint,
  'restore',
  'restore a checkpoint: only one space with --space, else all it holds (a collection checkpoint: everything)',
  'checkpointd checkpoint restore 3 --space test',
)
  .argument('<id>', 'checkpoint id')
  .option('--space <id>', 'restore only this space from the checkpoint')
  .action(async (id: string, options: CheckpointOptions) =>
    withClient(options, async (client) => {
      const { restoreCommand } = await import('./checkpoint-commands.js');
      await restoreCommand(client, id, options);
    }),
  );
clientCommand(checkpoint, 'import', 'bring in a checkpoint file made elsewhere: verified, then published under a fresh id, never over an existing one', 'checkpointd checkpoint import /backup/Checkpoint-000000002')
  .argument('<file>', 'the checkpoint file (a ZIP made by checkpointd)')
  .action(async (file: string, options: CheckpointOptions) =>
    withClient(options, async (client) => {
      const { importCommand } = await import('./checkpoint-commands.js');
      await importCommand(client, file, options);
    }),
  );
clientCommand(checkpoint, 'delete', 'delete a checkpoint (409 while the journal still needs it)', 'checkpointd checkpoint delete 3')
  .argument('<id>', 'checkpoint id')
  .option('--space <id>', 'through the space route (404 unless the checkpoint covers the space)')
  .action(async (id: string, options: CheckpointOptions) =>
    withClient(options, async (client) => {
      const { deleteCommand } = await import('./checkpoint-commands.js');
      await deleteCommand(client, id, options);
    }),
  );

clientCommand(program, 'switchover', 'hand the primary role to a connected standby now (send it to the primary)', 'checkpointd switchover --candidate node-b')
  .option('--candidate <node>', 'the standby to hand over to (default: the least lagging one)')
  .action(async (options: ClientOptions & { candidate?: string }) =>
    withClient(options, async (client) => {
      const { switchoverCommand } = await import('./failover-commands.js');
      await switchoverCommand(client, options);
    }),
  );
for (const [action, description] of [
  ['pause', 'turn automatic promotion off for the installation (maintenance)'],
  ['resume', 'turn automatic promotion back on'],
] as const) {
  clientCommand(program, action, description, `checkpointd ${action}`).action(async (options: ClientOptions) =>
    withClient(options, async (client) => {
      const { pauseCommand } = await import('./failover-commands.js');
      await pauseCommand(client, action, options);
    }),
  );
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
  fail(err);
}

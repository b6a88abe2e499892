/**
 * The built `checkpointd` command as a child process, the way a person or a
 * script runs it: through pipes (no terminal), or under a pseudo-terminal from
 * util-linux `script` when a test needs stderr to be a TTY.
 */
import { execFile, execFileSync } from 'node:child_process';
import { CliPath } from './daemon-process.js';

/** How a run ended and what it printed. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link runCli}. */
export interface CliOptions {
  /** Added to a clean environment (no CHECKPOINTD_* from the test's own, no tsx). */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
  for (const name of Object.keys(env)) if (name.startsWith('CHECKPOINTD_')) delete env[name];
  return { ...env, ...extra };
}

/** Run `file ARGS`; a non-zero exit is a result, not an error (only a spawn failure or a timeout rejects). */
function execute(file: string, args: string[], options: CliOptions): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: environment(options.env), cwd: options.cwd, timeout: options.timeoutMs ?? 20_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && (typeof err.code !== 'number' || err.killed)) return reject(new Error(`${file} ${args.join(' ')} did not run to its end: ${err.message}`));
      resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
    });
  });
}

/** Run `checkpointd ARGS` with stdout and stderr piped. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return execute(process.execPath, [CliPath, ...args], options);
}

/** Whether util-linux `script` (a pseudo-terminal for one command) is installed. */
export function hasScript(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v script'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const quote = (word: string): string => `'${word.replaceAll("'", `'\\''`)}'`;

/** Run `checkpointd ARGS` on a pseudo-terminal (`script -qec CMD /dev/null`): `output` is stdout and stderr as the terminal showed them. */
export async function runCliOnTerminal(args: string[], options: CliOptions = {}): Promise<{ code: number; output: string }> {
  const command = [process.execPath, CliPath, ...args].map(quote).join(' ');
  const result = await execute('script', ['-qec', command, '/dev/null'], options);
  return { code: result.code, output: result.stdout + result.stderr };
}

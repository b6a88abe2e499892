/** `checkpointd verify FILE`: check a checkpoint file end to end; needs no daemon and no configuration. */
import { promises as fs } from 'node:fs';
import { verifyCheckpointArchive, type VerifyResult } from '../checkpoint/index.js';
import { NotFoundError } from '../errors.js';
import { formatBytes } from './format.js';
import { byteProgress } from './progress.js';

/** Options of `verify`. */
export interface VerifyCommandOptions {
  json?: boolean;
}

/** The line printed when a checkpoint is refused: `FILE: entry E: problem`. */
export function problemLine(file: string, problem: string, entry: string | null): string {
  return `${file}: ${entry === null ? '' : `entry ${JSON.stringify(entry).slice(1, -1)}: `}${problem}`;
}

/** Verify `file`; print one summary line (or the JSON result); return whether it verified. */
export async function verifyCommand(file: string, options: VerifyCommandOptions): Promise<boolean> {
  const progress = byteProgress('verify');
  let result: VerifyResult;
  try {
    result = await verifyCheckpointArchive(file, { onProgress: (done, total) => progress.update(done, total) });
  } catch (err) {
    if (!(err instanceof NotFoundError) && (err as NodeJS.ErrnoException).code === undefined) throw err;
    result = { ok: false, problem: err instanceof NotFoundError ? 'no such file' : (err as Error).message, entry: null };
  } finally {
    progress.stop();
  }
  if (options.json === true) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  if (!result.ok) {
    process.stderr.write(`checkpointd: ${problemLine(file, result.problem, result.entry)}\n`);
    return false;
  }
  if (options.json !== true) {
    const m = result.manifest;
    const entries = 1 + (m.collection === null ? 0 : 1) + m.spaces.reduce((n, s) => n + s.files.length, 0);
    const { size } = await fs.stat(file);
    const spaces = `${m.spaces.length} space${m.spaces.length === 1 ? '' : 's'}`;
    process.stdout.write(`${file}: ok: checkpoint ${m.id}, ${m.scope} scope, ${spaces}, seq ${m.seq}, ${entries} entries verified, ${formatBytes(size)}\n`);
  }
  return true;
}

/** Verifying a checkpoint file end to end without keeping any of it. */
import { readCheckpointArchive } from './archive-reader.js';
import { CheckpointFormatError } from './checkpoint-format-error.js';
import type { Manifest } from './manifest.js';

/** The verdict on a checkpoint file; `entry` names the entry at fault when there is one. */
export type VerifyResult = { ok: true; manifest: Manifest } | { ok: false; problem: string; entry: string | null };

/** Options of {@link verifyCheckpointArchive}. */
export interface VerifyOptions {
  /** Uncompressed bytes checked so far, out of the total. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/**
 * Check every byte of a checkpoint: structure, names, manifest, each entry's
 * size, CRC-32 and SHA-256. A file that is not a valid checkpoint gives
 * `ok: false`; a missing file (NotFoundError), an I/O failure or an abort throws.
 */
export async function verifyCheckpointArchive(file: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  try {
    const manifest = await readCheckpointArchive(
      file,
      {
        async file(_entry, data) {
          for await (const _chunk of data) {
            // Reading is the check.
          }
        },
        transient: true,
      },
      options,
    );
    return { ok: true, manifest };
  } catch (err) {
    if (err instanceof CheckpointFormatError) return { ok: false, problem: err.problem, entry: err.entry };
    throw err;
  }
}

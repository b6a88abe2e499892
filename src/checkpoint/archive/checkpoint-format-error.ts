import path from 'node:path';
import { CheckpointdError } from '../../errors.js';
import { printableName } from './entry-names.js';

/**
 * A file that is not a valid checkpoint: damaged, truncated, hostile, or not
 * one at all (422). `entry` names the ZIP entry at fault, when there is one;
 * `problem` says what is wrong without the file name.
 */
export class CheckpointFormatError extends CheckpointdError {
  override readonly status = 422;
  constructor(
    readonly file: string,
    readonly entry: string | null,
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`${path.basename(file)}: ${entry === null ? '' : `entry ${printableName(entry)}: `}${problem}`, options);
  }
}

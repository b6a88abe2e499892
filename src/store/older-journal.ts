/**
 * The journal files a start-up does not read. Start-up reads the file that
 * holds the first record past what the data folder holds, and the files after
 * it; the files before it hold only records this node applied already. They
 * matter for two things: a fallback to an older checkpoint replays them, and
 * the restores they journal name checkpoints that retention must keep. So
 * they are read here, in the background once the node serves: every frame's
 * checksum and the seq chain are checked as start-up checks them, and the
 * restores are collected. Damage found here stops nothing (this node holds
 * every record of these files); it is logged, shown in status and /metrics,
 * and until the files check clean the checkpoints they may name are kept.
 */
import path from 'node:path';
import { JournalCorruptError } from '../errors.js';
import { scanJournal, type JournalFile, type JournalRecord } from '../journal/index.js';
import type { Logger } from '../log/index.js';
import { isValidOp, type StoreOp } from './ops.js';

/** Where the check of the older files stands. */
export type OlderJournalState = 'checking' | 'verified' | 'damaged' | 'unreadable';

/** The check as `status` shows it (data.journal.olderFiles). */
export interface OlderJournalStatus {
  state: OlderJournalState;
  /** Records below this seq were not read at start-up (0: every file was). */
  belowSeq: number;
  /** Journal files below `belowSeq` when the check started. */
  files: number;
  /** Bytes of valid records read by the last check that finished, null until one has. */
  bytes: number | null;
  /** Why the last check failed (names the file and offset), null unless damaged or unreadable. */
  error: string | null;
}

/** The op types a scan parses in records a store already holds: the restores, whose checkpoints retention keeps. */
export const RestoreType: ReadonlySet<string> = new Set(['restore']);

/** Note in `refs` the checkpoint `record` restores, if it is a restore: id -> seq of its latest restore. */
export function noteRestore(refs: Map<number, number>, record: JournalRecord): void {
  const op = record.op as StoreOp;
  if (isValidOp(op) && op.type === 'restore') refs.set(op.checkpoint, record.seq);
}

/** Attempts when files are pruned while they are read (a primary prunes behind a newer checkpoint). */
const PrunedRetries = 3;

/** One node's check of the journal files before `belowSeq`. */
export class OlderJournalCheck {
  private stateValue: OlderJournalState;
  private bytes: number | null = null;
  private error: string | null = null;
  /** Checkpoint id -> seq of the latest restore of it found in these files. */
  private readonly refs = new Map<number, number>();
  private running: Promise<void> = Promise.resolve();
  private readonly stopping = new AbortController();

  /**
   * `files` are the journal files below `belowSeq` that start-up skipped
   * (none: nothing to check); `heldSeq` is the data folder's applied seq
   * (every record of these files is at or below it).
   */
  constructor(
    private readonly dir: string,
    private readonly belowSeq: number,
    private readonly files: readonly JournalFile[],
    private readonly heldSeq: number,
    private readonly logger: Logger,
  ) {
    this.stateValue = files.length === 0 ? 'verified' : 'checking';
    if (files.length > 0) this.running = this.run();
  }

  /** True once every record below `belowSeq` was read and checked: the restores it names are all known. */
  get complete(): boolean {
    return this.stateValue === 'verified';
  }

  /** Records below this seq may name checkpoints not yet known while the check is not complete. */
  get uncheckedBelow(): number {
    return this.complete ? 0 : this.belowSeq;
  }

  /** Settles when the current check has finished (whatever it found). */
  get done(): Promise<void> {
    return this.running;
  }

  status(): OlderJournalStatus {
    return { state: this.stateValue, belowSeq: this.files.length === 0 ? 0 : this.belowSeq, files: this.files.length, bytes: this.bytes, error: this.error };
  }

  /** The restores found: checkpoint id -> seq. */
  restores(): ReadonlyMap<number, number> {
    return this.refs;
  }

  /** Forget the restores at or before `uptoSeq` (the journal before it was pruned). */
  forget(uptoSeq: number): void {
    for (const [id, seq] of this.refs) if (seq <= uptoSeq) this.refs.delete(id);
  }

  /** Stop checking (the store closes); settles once the read in progress has stopped. */
  async stop(): Promise<void> {
    this.stopping.abort(new Error('the store closed'));
    await this.running;
  }

  /** Check again when the last check failed (an operator may have put a good copy back, or moved the files aside). */
  recheck(): void {
    if ((this.stateValue !== 'damaged' && this.stateValue !== 'unreadable') || this.stopping.signal.aborted) return;
    this.stateValue = 'checking';
    this.running = this.run();
  }

  private async run(): Promise<void> {
    const started = performance.now();
    this.refs.clear();
    for (let attempt = 1; ; attempt++) {
      try {
        const scan = await scanJournal(this.dir, {
          repair: false,
          logger: this.logger,
          fromSeq: this.heldSeq,
          olderThan: this.belowSeq,
          signal: this.stopping.signal,
          earlierTypes: RestoreType,
          onEarlier: (record) => noteRestore(this.refs, record),
        });
        this.stateValue = 'verified';
        this.bytes = scan.bytes;
        this.error = null;
        this.logger.info('older journal files checked', { files: scan.files, bytes: scan.bytes, belowSeq: this.belowSeq, restores: this.refs.size, ms: Math.round(performance.now() - started) });
        return;
      } catch (err) {
        if (this.stopping.signal.aborted) return;
        const e = err as NodeJS.ErrnoException;
        // A file pruned behind a newer checkpoint while it was read needs no check: read the ones left.
        const pruned = e.code === 'ENOENT' && typeof e.path === 'string' && path.resolve(path.dirname(e.path)) === path.resolve(this.dir);
        if (pruned && attempt < PrunedRetries) continue;
        this.refs.clear();
        if (err instanceof JournalCorruptError) {
          this.stateValue = 'damaged';
          this.error = advice(err, this.files, this.heldSeq);
          this.logger.error('older journal file damaged', { file: err.file, offset: err.offset, lastGoodSeq: err.lastGoodSeq, error: this.error });
        } else {
          this.stateValue = 'unreadable';
          this.error = `the journal files before seq ${this.belowSeq} could not be read (${e.message}); checked again at the next retention run`;
          this.logger.warn('older journal files could not be checked', { error: e.message, belowSeq: this.belowSeq });
        }
        return;
      }
    }
  }
}

/**
 * What damage in an older file means and what to do. Every record of those
 * files is in this node's data folder, so nothing is lost while it runs; a
 * fallback to a checkpoint older than the damage would need them. A seq gap
 * is reported at the start of the file after the short one (possibly the
 * first file start-up read), so the files named end with the short one.
 */
function advice(err: JournalCorruptError, files: readonly JournalFile[], heldSeq: number): string {
  const at = files.findIndex((f) => f.path === err.file);
  const gap = err.offset === 0 && (at < 0 || (at > 0 && err.lastGoodSeq < files[at]!.firstSeq - 1));
  const last = at < 0 ? files.length - 1 : gap ? at - 1 : at;
  const names = files.slice(0, last + 1).map((f) => path.basename(f.path));
  const those = names.length === 1 ? 'that file' : 'those files';
  const named = names.length <= 3 ? names.join(', ') : `the ${names.length} journal files from ${names[0]} to ${names.at(-1)}`;
  return (
    `${err.damage} Every record in ${named} is at or before seq ${heldSeq}, which this node's data folder already holds, so nothing is lost and the node keeps serving; ` +
    `only a fallback to a checkpoint older than them would need ${those}. Restore ${path.basename(err.file)} from a copy, or move ${those} aside (keep the later files); ` +
    'until the files check clean, retention keeps every checkpoint a restore in them may name.'
  );
}

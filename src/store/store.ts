/**
 * The store: the persistent in-memory state plus the journal that makes it
 * durable. Two states are kept:
 *
 * - `head` includes every operation handed to the journal, acknowledged or not.
 *   New operations are validated against it, so two concurrent creates of the
 *   same space cannot both be journaled.
 * - `visible` includes only operations whose journal record is durable. Reads
 *   and snapshots use it, so nobody ever sees a commit that a crash could undo.
 *
 * A commit validates against `head` (a typed error changes nothing), appends to
 * the journal (which hands out the next `seq`), and resolves once the record is
 * fsynced and `visible` has moved past it. If the journal fails, `head` falls
 * back to the last durable state and every unacknowledged commit is refused.
 */
import { JournalWriter, scanJournal, type JournalRecord, type JournalStats, type ScanResult } from '../journal/index.js';
import type { JournalSync } from '../config/index.js';
import { UnavailableError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { isValidOp, type RestoreOp, type StoreOp } from './ops.js';
import { StoreState } from './store-state.js';

/** Options for {@link Store.open}. */
export interface StoreOptions {
  journalDir: string;
  sync: JournalSync;
  groupCommitMs: number;
  syncIntervalMs: number;
  logger: Logger;
  /** Read the journal but never write it (a secondary). */
  readOnly?: boolean;
  /**
   * Replays a journaled restore: loads the checkpoint it names and returns the
   * state after it. Without one, a journal holding a restore cannot be replayed.
   */
  replayRestore?: (op: RestoreOp, state: StoreState, seq: number) => Promise<StoreState>;
}

/** What a commit returns once durable. */
export interface CommitResult {
  seq: number;
  state: StoreState;
}

/** What start-up found in the journal. */
export interface RecoveryInfo {
  scan: ScanResult;
  replayed: number;
}

/** The collection's data: state, journal, commit pipeline. */
export class Store {
  private head: StoreState;
  private visibleState: StoreState;
  // States appended but not yet durable, in seq order.
  private pending: StoreState[] = [];
  private lastDurable: Promise<unknown> = Promise.resolve();
  /** Checkpoints that journaled restores load on replay: id -> seq of the latest such restore. */
  private readonly restoreRefs = new Map<number, number>();

  private constructor(
    private readonly writer: JournalWriter | null,
    state: StoreState,
    readonly recovery: RecoveryInfo,
    private readonly logger: Logger,
    /** Epoch stamped on the records this store writes. */
    readonly epoch: number,
    restoreRefs: Map<number, number>,
  ) {
    this.head = state;
    this.visibleState = state;
    for (const [id, seq] of restoreRefs) this.restoreRefs.set(id, seq);
  }

  /** Recover the journal (cutting a torn tail), replay it, and open it for writing. */
  static async open(options: StoreOptions): Promise<Store> {
    const { logger } = options;
    let state = StoreState.empty();
    let replayed = 0;
    const restoreRefs = new Map<number, number>();
    const scan = await scanJournal(options.journalDir, {
      repair: options.readOnly !== true,
      logger,
      onRecord: (record: JournalRecord) => {
        replayed++;
        const op = record.op as StoreOp;
        if (isValidOp(op) && op.type === 'restore') {
          restoreRefs.set(op.checkpoint, record.seq);
          return replayRestore(options, op, state, record.seq).then((next) => {
            state = next;
          });
        }
        state = replay(state, record);
        return undefined;
      },
    });
    logger.info('journal replayed', { records: replayed, lastSeq: scan.lastSeq, files: scan.files, bytes: scan.bytes, tailCut: scan.cut });
    const recovery = { scan, replayed };
    const epoch = Math.max(scan.lastEpoch, 1);
    if (options.readOnly === true) return new Store(null, state, recovery, logger, epoch, restoreRefs);
    // The journal reports failures to the store it feeds, which exists only once the writer does.
    const holder: { store?: Store } = {};
    const writer = await JournalWriter.open({
      dir: options.journalDir,
      nextSeq: scan.lastSeq + 1,
      epoch,
      sync: options.sync,
      groupCommitMs: options.groupCommitMs,
      syncIntervalMs: options.syncIntervalMs,
      logger,
      onFailure: (lastDurableSeq) => holder.store?.rollBack(lastDurableSeq),
    });
    holder.store = new Store(writer, state, recovery, logger, epoch, restoreRefs);
    return holder.store;
  }

  /** The durable state: what reads see, and what a checkpoint serialises. O(1): it is an immutable value. */
  get state(): StoreState {
    return this.visibleState;
  }

  /** True when this store accepts commits. */
  get writable(): boolean {
    return this.writer !== null;
  }

  /** Journal figures for status. */
  get journalStats(): JournalStats | null {
    return this.writer?.stats ?? null;
  }

  /** Apply `op` durably. Throws a typed error (nothing changed) if `op` is invalid now. */
  async commit(op: StoreOp): Promise<CommitResult> {
    return this.commitWith(op, (head, seq) => head.apply(op, seq));
  }

  /**
   * Journal a restore of checkpoint `op.checkpoint` and swap in the state `build`
   * makes from the current one (the staged, verified checkpoint content), all or
   * nothing: if `build` throws or the journal write fails, the state is unchanged.
   */
  async commitRestore(op: RestoreOp, build: (head: StoreState, seq: number) => StoreState): Promise<CommitResult> {
    const result = await this.commitWith(op, build);
    this.restoreRefs.set(op.checkpoint, result.seq);
    return result;
  }

  /** Checkpoints that the journal's restores need on replay: id -> seq of the latest restore of it. */
  get restoreReferences(): ReadonlyMap<number, number> {
    return this.restoreRefs;
  }

  private async commitWith(op: StoreOp, build: (head: StoreState, seq: number) => StoreState): Promise<CommitResult> {
    const writer = this.writer;
    if (writer === null) throw new UnavailableError('this node does not accept writes (it is not the primary); send writes to the primary');
    const seq = this.head.seq + 1;
    const next = build(this.head, seq);
    if (next === this.head) {
      // A no-op (reloading an identical template): nothing to journal, but answer only once what it repeats is durable.
      await this.lastDurable.catch(() => undefined);
      return { seq: this.visibleState.seq, state: this.visibleState };
    }
    const appended = writer.append(op);
    if (appended.seq !== seq) throw new Error(`journal seq ${appended.seq} does not follow state seq ${seq - 1}`);
    this.head = next;
    this.pending.push(next);
    this.lastDurable = appended.durable;
    await appended.durable;
    while (this.pending.length > 0 && this.pending[0]!.seq <= seq) this.visibleState = this.pending.shift()!;
    return { seq, state: next };
  }

  // Called synchronously by the journal before it refuses the unacknowledged records.
  private rollBack(lastDurableSeq: number): void {
    while (this.pending.length > 0 && this.pending[0]!.seq <= lastDurableSeq) this.visibleState = this.pending.shift()!;
    this.logger.error('journal write failed; commits after the last durable one were refused', { lastDurableSeq, refused: this.pending.length });
    this.pending = [];
    this.head = this.visibleState;
  }

  /** Roll the journal to a new file (a checkpoint's boundary). */
  async rollJournal(): Promise<string> {
    if (this.writer === null) throw new UnavailableError('this node does not write the journal');
    return this.writer.roll();
  }

  /** Flush and close the journal. */
  async close(): Promise<void> {
    await this.writer?.close();
  }
}

async function replayRestore(options: StoreOptions, op: RestoreOp, state: StoreState, seq: number): Promise<StoreState> {
  if (options.replayRestore === undefined) {
    throw new Error(`journal record seq ${seq} restores checkpoint ${op.checkpoint}, and this store cannot load checkpoints; refusing to start rather than skip it`);
  }
  try {
    return await options.replayRestore(op, state, seq);
  } catch (err) {
    throw new Error(
      `journal record seq ${seq} restores checkpoint ${op.checkpoint}, which cannot be loaded (${(err as Error).message}); ` +
        'put that checkpoint file back into FileVault/checkpoint and start again',
      { cause: err },
    );
  }
}

function replay(state: StoreState, record: JournalRecord): StoreState {
  if (!isValidOp(record.op)) {
    throw new Error(`journal record seq ${record.seq} holds an operation this version cannot read; refusing to start rather than skip it`);
  }
  try {
    return state.apply(record.op, record.seq);
  } catch (err) {
    throw new Error(`journal record seq ${record.seq} does not apply to the replayed state (${(err as Error).message}); refusing to start rather than skip it`, { cause: err });
  }
}

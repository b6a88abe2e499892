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
import path from 'node:path';
import {
  JournalTail,
  JournalWriter,
  listCountedJournalFiles,
  pruneJournalFiles,
  scanJournal,
  type JournalFile,
  type JournalRecord,
  type JournalStats,
  type ScanResult,
  type TailResult,
} from '../journal/index.js';
import type { Instant } from '../clock.js';
import type { JournalSync } from '../config/index.js';
import { ConflictError, FencedError, JournalCorruptError, UnavailableError } from '../errors.js';
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
  /**
   * The state to start from instead of the empty one: a collection checkpoint
   * loaded at its seq. Only journal records after it are applied; the journal
   * must reach back to it.
   */
  base?: StoreState;
}

/** The op types a start-up parses in the journal its base checkpoint holds. */
const RestoreType: ReadonlySet<string> = new Set(['restore']);

/** What {@link Store.catchUp} found. */
export interface CatchUpResult {
  applied: number;
  gap: TailResult['gap'];
  diverged: TailResult['diverged'];
}

/** Called after each durable commit, in seq order. */
export type CommitListener = (op: StoreOp, seq: number) => void;

/** What a commit returns once durable. */
export interface CommitResult {
  seq: number;
  state: StoreState;
}

/** What start-up found in the journal. */
export interface RecoveryInfo {
  scan: ScanResult;
  replayed: number;
  /** The seq of the state replay started from (0: the empty state). */
  baseSeq: number;
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
  private readonly listeners = new Set<CommitListener>();
  /** Why this node must not acknowledge commits now (a lost or lapsing lease), or null. */
  private fence: (at?: Instant) => string | null = () => null;

  /** A follower's position in the journal (null once it writes). */
  private tail: JournalTail | null;
  /** Serialises catch-up and promotion. */
  private following: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly options: StoreOptions,
    private writer: JournalWriter | null,
    state: StoreState,
    readonly recovery: RecoveryInfo,
    private readonly logger: Logger,
    /** Epoch stamped on the records this store writes (the journal's last epoch while following). */
    private epochValue: number,
    restoreRefs: Map<number, number>,
  ) {
    this.tail = writer === null ? new JournalTail(options.journalDir, state.seq + 1, epochValue) : null;
    this.head = state;
    this.visibleState = state;
    for (const [id, seq] of restoreRefs) this.restoreRefs.set(id, seq);
  }

  /** Recover the journal (cutting a torn tail), replay it, and open it for writing. */
  static async open(options: StoreOptions): Promise<Store> {
    const { logger } = options;
    let state = options.base ?? StoreState.empty();
    const baseSeq = state.seq;
    const files = await listCountedJournalFiles(options.journalDir);
    checkJournalReachesBack(files, baseSeq);
    let replayed = 0;
    const restoreRefs = new Map<number, number>();
    const scan = await scanJournal(options.journalDir, {
      repair: options.readOnly !== true,
      logger,
      fromSeq: baseSeq,
      // The records the base holds are checked but not parsed, but for the restores: they still name
      // checkpoints a fallback to an older base would load.
      earlierTypes: RestoreType,
      onEarlier: (record: JournalRecord) => {
        const op = record.op as StoreOp;
        if (isValidOp(op) && op.type === 'restore') restoreRefs.set(op.checkpoint, record.seq);
      },
      onRecord: (record: JournalRecord) => {
        const op = record.op as StoreOp;
        if (isValidOp(op) && op.type === 'restore') restoreRefs.set(op.checkpoint, record.seq);
        replayed++;
        if (isValidOp(op) && op.type === 'restore') {
          return replayRestore(options, op, state, record.seq).then((next) => {
            state = next;
          });
        }
        state = replay(state, record);
        return undefined;
      },
    }).catch((err: unknown) => {
      throw err instanceof JournalCorruptError ? withCoveredAdvice(err, files, baseSeq) : err;
    });
    const after = await listCountedJournalFiles(options.journalDir);
    const end = journalEnd(scan, after);
    if (end < baseSeq) {
      throw new Error(
        `the journal ends at seq ${end} but the checkpoint to start from is at seq ${baseSeq}: journal files are missing from ${options.journalDir}; ` +
          'put them back (from a backup of the FileVault) and start again',
      );
    }
    logger.info('journal replayed', { records: replayed, fromSeq: baseSeq, lastSeq: end, files: scan.files, bytes: scan.bytes, tailCut: scan.cut });
    const recovery = { scan, replayed, baseSeq };
    const epoch = Math.max(scan.lastEpoch, after.at(-1)?.epoch ?? 0, 1);
    if (options.readOnly === true) return new Store(options, null, state, recovery, logger, epoch, restoreRefs);
    // The journal reports failures to the store it feeds, which exists only once the writer does.
    const holder: { store?: Store } = {};
    const writer = await openWriter(options, end + 1, epoch, (lastDurableSeq) => holder.store?.rollBack(lastDurableSeq));
    holder.store = new Store(options, writer, state, recovery, logger, epoch, restoreRefs);
    return holder.store;
  }

  /** The durable state: what reads see, and what a checkpoint serialises. O(1): it is an immutable value. */
  get state(): StoreState {
    return this.visibleState;
  }

  /**
   * True when this store accepts commits now: it writes the journal and its
   * fence lets it. A fenced primary still holds the journal until it rejoins
   * as a follower, and must not checkpoint, roll or prune it meanwhile.
   */
  get writable(): boolean {
    return this.refusal === null;
  }

  /** Why this store refuses commits now (it does not write the journal, or it is fenced), or null when it accepts them. */
  get refusal(): string | null {
    return this.refusalAt();
  }

  /**
   * Why this store refuses commits at `at` (now unless given), or null when it accepts them then: a health answer
   * asks about the instant it names (clock.ts).
   */
  refusalAt(at?: Instant): string | null {
    if (this.writer === null) return 'this node is not the primary';
    const fenced = this.fence(at);
    return fenced === null ? null : `this node is fenced (${fenced})`;
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
    this.throwIfFenced('refused');
    const seq = this.head.seq + 1;
    const next = build(this.head, seq);
    if (next === this.head) {
      // A no-op (reloading an identical template): nothing to journal, but answer only once what it repeats is durable.
      await this.lastDurable.catch(() => undefined);
      // Its answer says the state holds it: a fenced node may no longer say so.
      this.throwIfFenced('a no-op, not acknowledged');
      return { seq: this.visibleState.seq, state: this.visibleState };
    }
    const appended = writer.append(op);
    if (appended.seq !== seq) throw new Error(`journal seq ${appended.seq} does not follow state seq ${seq - 1}`);
    this.head = next;
    this.pending.push(next);
    this.lastDurable = appended.durable;
    await appended.durable;
    // Fenced while the record was being written: it is in the journal, but this node may no longer say so, nor
    // show it to reads or checkpoints (a successor may have sealed the journal before it: then it is void).
    this.throwIfFenced('written to the journal but not acknowledged');
    while (this.pending.length > 0 && this.pending[0]!.seq <= seq) this.visibleState = this.pending.shift()!;
    for (const listener of this.listeners) {
      try {
        listener(op, seq);
      } catch (err) {
        this.logger.error('a commit listener failed', { seq, error: (err as Error).message });
      }
    }
    return { seq, state: next };
  }

  /**
   * Install the fence (failover/fence.ts): `reason` is asked before every
   * commit and again before every acknowledgement, and a non-null answer
   * refuses it (FencedError, 503), so a node whose lease may have lapsed never
   * acknowledges, nor shows what it wrote meanwhile.
   */
  setFence(reason: (at?: Instant) => string | null): void {
    this.fence = reason;
  }

  private throwIfFenced(what: string): void {
    const reason = this.fence();
    if (reason !== null) throw new FencedError(`this node is fenced (${reason}); the commit was ${what}; retry on the primary`);
  }

  /** Call `listener` after each durable commit from now on; returns the unsubscribe function. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The journal files, oldest first. */
  journalFiles(): Promise<JournalFile[]> {
    return listCountedJournalFiles(this.options.journalDir);
  }

  /** Epoch stamped on the records this store writes. */
  get epoch(): number {
    return this.epochValue;
  }

  /**
   * A follower (read-only store) applies the journal records written since
   * its last call, as the primary writes them: a warm standby. Returns how
   * many it applied; the gap when the records it needs were pruned; and
   * `diverged` when a promotion sealed the journal below records it applied
   * (they were void). After either it must start again from a checkpoint.
   * A record whose apply fails is not passed: the call rejects, and the next
   * one applies that record again.
   */
  catchUp(): Promise<CatchUpResult> {
    const run = this.following.then(async (): Promise<CatchUpResult> => {
      if (this.tail === null) return { applied: 0, gap: null, diverged: null };
      const { records, gap, diverged } = await this.tail.poll((record) => this.follow(record));
      return { applied: records, gap, diverged };
    });
    this.following = run.catch(() => undefined);
    return run;
  }

  private follow(record: JournalRecord): Promise<void> | undefined {
    const op = record.op as StoreOp;
    const done = (next: StoreState): void => {
      this.head = next;
      this.visibleState = next;
      this.epochValue = Math.max(this.epochValue, record.epoch);
    };
    if (isValidOp(op) && op.type === 'restore') {
      this.restoreRefs.set(op.checkpoint, record.seq);
      return replayRestore(this.options, op, this.visibleState, record.seq).then(done);
    }
    done(replay(this.visibleState, record));
    return undefined;
  }

  /**
   * Become the journal's writer at `epoch` (a promotion, or a primary's
   * start): apply what is left of the journal and open a new file for the
   * epoch, starting after the last good record. Nothing the previous epoch
   * wrote is changed, not even a torn tail: its writer may still be alive and
   * its late writes may land there; the new file seals them off (void by rule,
   * journal-files.ts). The caller has claimed the epoch, so no other node
   * writes any more. Returns the seal: the last seq of the previous epoch.
   */
  promote(epoch: number): Promise<number> {
    const run = this.following.then(async () => {
      if (this.writer !== null) throw new ConflictError('this store already writes the journal');
      const { options, logger } = this;
      const fromSeq = this.visibleState.seq;
      // Only the files from the one this node is reading on: it read and checked the ones before.
      const scan = await scanJournal(options.journalDir, {
        repair: false,
        logger,
        fromSeq,
        skipReadFiles: true,
        onRecord: (record: JournalRecord) => this.follow(record),
      });
      const end = journalEnd(scan, await listCountedJournalFiles(options.journalDir));
      this.writer = await openWriter(options, end + 1, epoch, (lastDurableSeq) => this.rollBack(lastDurableSeq));
      if (scan.cut !== null) logger.warn('journal torn tail sealed off at the last good record', { ...scan.cut, sealedSeq: end, nextFile: this.writer.stats.file });
      this.tail = null;
      this.epochValue = epoch;
      logger.info('journal taken over', { epoch, sealedSeq: end, applied: end - fromSeq, tailCut: scan.cut, file: this.writer.stats.file });
      return end;
    });
    this.following = run.catch(() => undefined);
    return run;
  }

  /**
   * Remove the journal files that hold nothing past `uptoSeq` (every retained
   * checkpoint is at or after it), and forget the restores in that stretch:
   * no retained start-up base replays them.
   */
  async pruneJournal(uptoSeq: number): Promise<JournalFile[]> {
    if (this.writer === null) throw new UnavailableError('this node does not write the journal');
    const removed = await pruneJournalFiles(this.options.journalDir, uptoSeq);
    for (const [id, seq] of this.restoreRefs) if (seq <= uptoSeq) this.restoreRefs.delete(id);
    if (removed.length > 0) this.logger.info('journal pruned', { uptoSeq, files: removed.map((f) => f.path) });
    return removed;
  }

  // Called synchronously by the journal before it refuses the unacknowledged records.
  private rollBack(lastDurableSeq: number): void {
    while (this.pending.length > 0 && this.pending[0]!.seq <= lastDurableSeq) this.visibleState = this.pending.shift()!;
    this.logger.error('journal write failed; commits after the last durable one were refused', { lastDurableSeq, refused: this.pending.length });
    this.pending = [];
    this.head = this.visibleState;
  }

  /**
   * Stop writing the journal and follow it again (a switchover): the commits
   * already handed to the journal are answered first; the caller's fence
   * refuses new ones meanwhile.
   */
  demote(): Promise<void> {
    const run = this.following.then(async () => {
      const writer = this.writer;
      if (writer === null) return;
      await this.lastDurable.catch(() => undefined);
      await writer.close();
      this.writer = null;
      this.pending = [];
      this.head = this.visibleState;
      this.tail = new JournalTail(this.options.journalDir, this.visibleState.seq + 1, this.epochValue);
      this.logger.info('journal handed over; following it', { seq: this.visibleState.seq });
    });
    this.following = run.catch(() => undefined);
    return run;
  }

  /**
   * Take over `fresh`'s state and journal position (a store just opened
   * read-only from the newest checkpoint and the journal): a fenced primary
   * rejoining as a follower trusts nothing it held in memory, since the new
   * primary's history is the journal as it sealed it.
   */
  adopt(fresh: Store): Promise<void> {
    const run = this.following.then(async () => {
      if (this.writer !== null) {
        await this.writer.close().catch((err: unknown) => this.logger.warn('closing the old journal writer failed', { error: (err as Error).message }));
        this.writer = null;
      }
      this.pending = [];
      this.visibleState = fresh.visibleState;
      this.head = fresh.visibleState;
      this.epochValue = fresh.epochValue;
      this.restoreRefs.clear();
      for (const [id, seq] of fresh.restoreRefs) this.restoreRefs.set(id, seq);
      this.tail = new JournalTail(this.options.journalDir, fresh.visibleState.seq + 1, fresh.epochValue);
      this.logger.info('state rebuilt from the checkpoint and the journal; following it', { seq: fresh.visibleState.seq });
    });
    this.following = run.catch(() => undefined);
    return run;
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

/** The journal writer for `options`, appending from `nextSeq` at `epoch`. */
function openWriter(options: StoreOptions, nextSeq: number, epoch: number, onFailure: (lastDurableSeq: number) => void): Promise<JournalWriter> {
  return JournalWriter.open({
    dir: options.journalDir,
    nextSeq,
    epoch,
    sync: options.sync,
    groupCommitMs: options.groupCommitMs,
    syncIntervalMs: options.syncIntervalMs,
    logger: options.logger,
    onFailure,
  });
}

/**
 * The seq of the journal's last record. Pruning can leave only files that hold
 * no record yet (a new file after a checkpoint's roll): then the journal ends
 * just before the newest file's first seq.
 */
function journalEnd(scan: ScanResult, files: JournalFile[]): number {
  return Math.max(scan.lastSeq, (files.at(-1)?.firstSeq ?? 1) - 1);
}

/**
 * The journal's own advice for damage in the middle is to restore the file or
 * move it and every later file aside, accepting the loss of their commits.
 * When the damage lies in files whose records the start-up checkpoint already
 * holds, moving just those files aside loses nothing, while moving the later
 * ones would drop acknowledged commits newer than the checkpoint: say so.
 * (A seq gap is reported at the start of the file after the short one; damage
 * in the first record of a file is reported there too, and is no gap.)
 */
function withCoveredAdvice(err: JournalCorruptError, files: JournalFile[], baseSeq: number): JournalCorruptError {
  const at = files.findIndex((f) => f.path === err.file);
  const coveredUpTo = (i: number): boolean => i >= 0 && i + 1 < files.length && files[i + 1]!.firstSeq - 1 <= baseSeq;
  // A gap: the file before the one named ends short of the seq it starts after.
  const gap = at > 0 && err.offset === 0 && err.lastGoodSeq < files[at]!.firstSeq - 1;
  const last = coveredUpTo(at) ? at : gap && coveredUpTo(at - 1) ? at - 1 : -1;
  if (last < 0) return err;
  const names = files.slice(0, last + 1).map((f) => path.basename(f.path));
  return new JournalCorruptError(
    `${err.message} But every record in ${names.join(', ')} is at or before seq ${baseSeq}, which the checkpoint loaded at start-up already holds: ` +
      `moving just ${names.length === 1 ? 'that file' : 'those files'} aside loses nothing (keep the later files; only a fallback to an older checkpoint would need the moved ones).`,
    err.file,
    err.offset,
    err.lastGoodSeq,
  );
}

function checkJournalReachesBack(files: JournalFile[], baseSeq: number): void {
  const first = files[0];
  if (first === undefined) {
    if (baseSeq > 0) throw new Error(`the journal folder holds no journal, but the checkpoint to start from is at seq ${baseSeq}; the journal after it is missing`);
    return;
  }
  if (first.firstSeq > baseSeq + 1) {
    throw new Error(
      baseSeq === 0
        ? `the journal starts at seq ${first.firstSeq}: the records before it were pruned behind a checkpoint, and no valid collection checkpoint of this installation is there to start from; ` +
            'put the newest collection checkpoint back into FileVault/checkpoint and start again'
        : `the journal starts at seq ${first.firstSeq}, after the checkpoint to start from (seq ${baseSeq}): seqs ${baseSeq + 1}..${first.firstSeq - 1} are missing`,
    );
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

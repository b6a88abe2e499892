/**
 * The store: the storage engine's state plus the journal that makes it
 * durable.
 *
 * - What reads and checkpoints see (Store.state, Store.engine) is exactly
 *   the operations whose journal record is acknowledged, so nobody ever sees
 *   a commit that a crash could undo, and a commit's caller, once answered,
 *   reads what it wrote. Acknowledged operations reach the engine in steps:
 *   they gather for up to `ApplyDelayMs` (or `ApplyBatchRecords` records,
 *   `ApplyBatchBytes` of journal: then the step goes once the callers
 *   acknowledged in that turn have heard of it), and any read applies what has gathered
 *   before it reads, so a step writes each touched engine page once for many
 *   commits instead of once per group commit.
 * - The head (head.ts) adds the operations handed to the journal but not yet
 *   acknowledged. New operations are checked against it, so two concurrent
 *   creates of the same space cannot both be journaled.
 *
 * A commit is checked against the head (a typed error changes nothing),
 * appended to the journal (which hands out the next `seq`), answered once the
 * journal acknowledges it (JournalWriter's onAcknowledged), and applied to the
 * engine with the rest of its step.
 * If the journal fails, the operations it did not acknowledge are refused and
 * the head falls back to the engine.
 */
import path from 'node:path';
import {
  JournalTail,
  JournalWriter,
  firstFileToRead,
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
import { ConflictError, FencedError, UnavailableError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { Engine } from './engine.js';
import { Head, type Effects } from './head.js';
import { noteRestore, OlderJournalCheck, RestoreType } from './older-journal.js';
import { isValidOp, type RestoreOp, type StoreOp } from './ops.js';
import { StateView } from './state-view.js';

/**
 * Longest an acknowledged operation waits for its engine step (a read applies
 * it at once). A step writes each page it touches once, so fewer, larger
 * steps write fewer pages a commit: at 10 ms, 64 HTTP clients PUTting new
 * keys into a space of two indexes made a step every 60–80 PUTs, 29% of the
 * daemon's main thread (bench/README.md, scale).
 */
const ApplyDelayMs = 100;
/**
 * Acknowledged operations, or bytes of their journal records, that make a
 * step at once. They bound what waits, and the pause a step makes on the
 * event loop. Writers in process, whose rate is far above HTTP clients',
 * reach the bound: at 64 of them, steps of 256 records committed 0.7× as
 * fast as steps of 10 ms (which held 400–500 records there), 512 and 1,024
 * as fast; under 16 saturating writers during a checkpoint, steps of up to
 * 8,192 records raised p99 commit latency from 18.9 to 32.7 ms (deflate:1).
 */
const ApplyBatchRecords = 512;
const ApplyBatchBytes = 1024 * 1024;

/** Options for {@link Store.open}. */
export interface StoreOptions {
  journalDir: string;
  sync: JournalSync;
  groupCommitMs: number;
  syncIntervalMs: number;
  logger: Logger;
  /** The storage engine to serve from: its applied seq is where the replay of the journal starts. */
  engine: Engine;
  /** Read the journal but never write it (a secondary). */
  readOnly?: boolean;
  /**
   * Replays a journaled restore: puts the checkpoint it names into the engine
   * as the operation numbered `seq` (Engine.install). Without one, a journal
   * holding a restore cannot be replayed.
   */
  replayRestore?: (op: RestoreOp, engine: Engine, seq: number, epoch: number) => Promise<void>;
}

/** Records a replay or a follower applies to the engine in one step. */
const ReplayStepRecords = 1000;

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
  state: StateView;
}

/** What start-up found in the journal. */
export interface RecoveryInfo {
  scan: ScanResult;
  replayed: number;
  /** The seq replay started after: the engine's applied seq (0: an empty engine). */
  baseSeq: number;
}

/** An operation handed to the journal and not applied to the engine yet. */
interface Pending {
  op: StoreOp;
  seq: number;
  epoch: number;
  effects: Effects;
  /** For a restore: puts the staged checkpoint in place (Engine.install) as this seq. */
  install?: (engine: Engine, seq: number) => void;
  /** Bytes of its journal record. */
  bytes?: number;
  /** Set when the journal acknowledged it and this store took it for the engine. */
  acknowledged?: boolean;
}

/**
 * Applies journal records to an engine a step at a time (a replay, a
 * follower): records gather until `ReplayStepRecords`, a restore, or `flush`.
 */
class Replayer {
  private batch: { op: StoreOp; seq: number; epoch: number }[] = [];

  constructor(
    private readonly engine: () => Engine,
    private readonly options: StoreOptions,
  ) {}

  /** Take `record`; a promise when it had to be applied now (a restore). */
  add(record: JournalRecord): Promise<void> | undefined {
    if (!isValidOp(record.op)) {
      this.flush();
      throw new Error(`journal record seq ${record.seq} holds an operation this version cannot read; refusing to start rather than skip it`);
    }
    const op = record.op;
    if (op.type === 'restore') {
      this.flush();
      if (record.seq <= this.engine().appliedSeq) return undefined;
      return replayRestore(this.options, op, this.engine(), record.seq, record.epoch);
    }
    this.batch.push({ op, seq: record.seq, epoch: record.epoch });
    if (this.batch.length >= ReplayStepRecords) this.flush();
    return undefined;
  }

  /** Apply what has gathered; an Error naming the record that does not apply. */
  flush(): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    try {
      this.engine().apply(batch);
    } catch (err) {
      const failed = this.engine().appliedSeq + 1;
      throw new Error(`journal record seq ${failed} does not apply to the replayed state (${(err as Error).message}); refusing to start rather than skip it`, { cause: err });
    }
  }
}

/** The collection's data: engine, journal, commit pipeline. */
export class Store {
  private engineValue: Engine;
  private readonly head: Head;
  /** Seq of the last operation handed to the journal (or applied, while following). */
  private headSeq: number;
  /** Operations handed to the journal and not acknowledged yet, in seq order. */
  private pending: Pending[] = [];
  /** Operations acknowledged and not applied to the engine yet (their step), in seq order, with their journal bytes. */
  private acked: Pending[] = [];
  private ackedBytes = 0;
  private applyTimer: NodeJS.Timeout | null = null;
  private applyImmediate: NodeJS.Immediate | null = null;
  private lastDurable: Promise<unknown> = Promise.resolve();
  /** Set while a restore is journaled and installed: commits wait for it. */
  private restoring: Promise<unknown> | null = null;
  /** Why the engine no longer takes the journal's records (its folder cannot be written), or null. */
  private broken: Error | null = null;
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
    readonly recovery: RecoveryInfo,
    private readonly logger: Logger,
    /** Epoch stamped on the records this store writes (the journal's last epoch while following). */
    private epochValue: number,
    restoreRefs: Map<number, number>,
    /** The check of the journal files start-up did not read. */
    private older: OlderJournalCheck,
  ) {
    this.engineValue = options.engine;
    this.head = new Head(options.engine);
    this.headSeq = options.engine.appliedSeq;
    this.tail = writer === null ? new JournalTail(options.journalDir, this.headSeq + 1, options.engine.appliedEpoch || epochValue) : null;
    for (const [id, seq] of restoreRefs) this.restoreRefs.set(id, seq);
  }

  /**
   * Recover the journal (cutting a torn tail), replay it into the engine after
   * its applied seq, and open it for writing. Only the file that holds the
   * first record past the engine's applied seq and the files after it are
   * read now; the older ones are checked in the background (older-journal.ts).
   */
  static async open(options: StoreOptions): Promise<Store> {
    const { logger, engine } = options;
    const baseSeq = engine.appliedSeq;
    const files = await listCountedJournalFiles(options.journalDir);
    checkJournalReachesBack(files, baseSeq);
    checkNotDiverged(files, engine);
    const first = firstFileToRead(files, baseSeq);
    let replayed = 0;
    const restoreRefs = new Map<number, number>();
    const replayer = new Replayer(() => engine, options);
    const scan = await scanJournal(options.journalDir, {
      repair: options.readOnly !== true,
      logger,
      fromSeq: baseSeq,
      skipReadFiles: true,
      // The records the engine holds are checked but not parsed, but for the restores: they still name
      // checkpoints a fallback to an older base would load.
      earlierTypes: RestoreType,
      onEarlier: (record: JournalRecord) => noteRestore(restoreRefs, record),
      onRecord: (record: JournalRecord) => {
        noteRestore(restoreRefs, record);
        replayed++;
        return replayer.add(record);
      },
    });
    replayer.flush();
    const after = await listCountedJournalFiles(options.journalDir);
    const end = journalEnd(scan, after);
    if (end < baseSeq) {
      // The journal is the source of truth: what the engine holds past its end is on no other node either.
      throw new EngineDivergedError(
        `the journal ends at seq ${end} but the node's data folder holds the collection at seq ${baseSeq}: records it applied are no longer in ${options.journalDir} (cut, or removed); ` +
          'the data folder is rebuilt from the newest checkpoint and the journal as it is',
      );
    }
    logger.info('journal replayed', { records: replayed, fromSeq: baseSeq, lastSeq: end, files: scan.files, bytes: scan.bytes, tailCut: scan.cut });
    const recovery = { scan, replayed, baseSeq };
    const epoch = Math.max(scan.lastEpoch, after.at(-1)?.epoch ?? 0, 1);
    const older = new OlderJournalCheck(options.journalDir, files[first]?.firstSeq ?? 0, files.slice(0, first), baseSeq, logger);
    if (options.readOnly === true) return new Store(options, null, recovery, logger, epoch, restoreRefs, older);
    // The journal reports failures to the store it feeds, which exists only once the writer does.
    const holder: { store?: Store } = {};
    const writer = await openWriter(options, end + 1, epoch, {
      onFailure: (lastDurableSeq) => holder.store?.rollBack(lastDurableSeq),
      onAcknowledged: (lastSeq) => holder.store?.acknowledged(lastSeq),
    });
    holder.store = new Store(options, writer, recovery, logger, epoch, restoreRefs, older);
    return holder.store;
  }

  /** The durable state: what reads see, and what a checkpoint is made from. */
  get state(): StateView {
    return new StateView(
      () => this.readable(),
      () => this.engine.appliedSeq,
    );
  }

  /** The engine, once it holds every acknowledged commit; UnavailableError when it could not take them (its data would be stale). */
  private readable(): Engine {
    const engine = this.engine;
    if (this.broken !== null) throw new UnavailableError(`this node's data folder stopped taking changes (${this.broken.message}); restart it, or read from another node`);
    return engine;
  }

  /** The storage engine this store applies to (it changes when a rebuilt one is adopted). */
  get engine(): Engine {
    this.applyAcknowledged();
    return this.engineValue;
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
    if (fenced !== null) return `this node is fenced (${fenced})`;
    return this.broken === null ? null : `its data folder stopped taking changes (${this.broken.message}); restart it`;
  }

  /** Journal figures for status. */
  get journalStats(): JournalStats | null {
    return this.writer?.stats ?? null;
  }

  /** Apply `op` durably. Throws a typed error (nothing changed) if `op` is invalid now. */
  async commit(op: StoreOp): Promise<CommitResult> {
    while (this.restoring !== null) await this.restoring.catch(() => undefined);
    const writer = this.requireWriter();
    const seq = this.headSeq + 1;
    const effects = this.head.check(op, seq);
    if (effects === null) {
      // A no-op (reloading an identical template): nothing to journal, but answer only once what it repeats is durable.
      await this.lastDurable.catch(() => undefined);
      // Its answer says the state holds it: a fenced node may no longer say so.
      this.throwIfFenced('a no-op, not acknowledged');
      return { seq: this.state.seq, state: this.state };
    }
    return this.journal(writer, { op, seq, epoch: this.epochValue, effects });
  }

  /**
   * Journal a restore of checkpoint `op.checkpoint`, once every commit before
   * it is applied, and put the staged checkpoint content in place with
   * `install` as its seq (`check` first, against the state it lands on: it
   * throws to refuse, and nothing is journaled). Commits asked for meanwhile
   * wait for it. All or nothing: if `check` throws or the journal write fails,
   * the state is unchanged.
   */
  async commitRestore(op: RestoreOp, check: (state: StateView) => void, install: (engine: Engine, seq: number) => void): Promise<CommitResult> {
    while (this.restoring !== null) await this.restoring.catch(() => undefined);
    const run = (async () => {
      const writer = this.requireWriter();
      await this.lastDurable.catch(() => undefined);
      if (this.pending.length > 0) throw new UnavailableError('commits before the restore could not be applied; retry the restore');
      check(this.state);
      const seq = this.headSeq + 1;
      return this.journal(writer, { op, seq, epoch: this.epochValue, effects: { templates: [], spaces: [], keys: new Map() }, install });
    })();
    this.restoring = run;
    try {
      const result = await run;
      this.restoreRefs.set(op.checkpoint, result.seq);
      return result;
    } finally {
      this.restoring = null;
    }
  }

  /**
   * Checkpoints that the journal's restores need on replay: id -> seq of the
   * latest restore of it. While `olderJournal` is not complete, restores in
   * the journal before its `uncheckedBelow` are not known yet.
   */
  get restoreReferences(): ReadonlyMap<number, number> {
    const older = this.older.restores();
    if (older.size === 0) return this.restoreRefs;
    const all = new Map(older);
    for (const [id, seq] of this.restoreRefs) all.set(id, seq);
    return all;
  }

  /** The background check of the journal files start-up did not read. */
  get olderJournal(): OlderJournalCheck {
    return this.older;
  }

  private requireWriter(): JournalWriter {
    const writer = this.writer;
    if (writer === null) throw new UnavailableError('this node does not accept writes (it is not the primary); send writes to the primary');
    this.throwIfFenced('refused');
    if (this.broken !== null) throw new UnavailableError(`this node's data folder stopped taking changes (${this.broken.message}); restart it, or send writes to another node`);
    return writer;
  }

  private async journal(writer: JournalWriter, entry: Pending): Promise<CommitResult> {
    const appended = writer.append(entry.op);
    if (appended.seq !== entry.seq) throw new Error(`journal seq ${appended.seq} does not follow state seq ${entry.seq - 1}`);
    this.headSeq = entry.seq;
    this.head.add(entry.effects, entry.seq);
    this.pending.push(entry);
    entry.bytes = appended.bytes;
    this.lastDurable = appended.durable;
    await appended.durable;
    // Fenced while the record was being written: it is in the journal, but this node may no longer say so, nor
    // show it to reads or checkpoints (a successor may have sealed the journal before it: then it is void).
    this.throwIfFenced('written to the journal but not acknowledged');
    if (entry.acknowledged !== true) {
      throw new UnavailableError(`the commit is in the journal, but this node's data folder did not take it (${this.broken?.message ?? 'not applied'}); it is not acknowledged`);
    }
    for (const listener of this.listeners) {
      try {
        listener(entry.op, entry.seq);
      } catch (err) {
        this.logger.error('a commit listener failed', { seq: entry.seq, error: (err as Error).message });
      }
    }
    return { seq: entry.seq, state: this.state };
  }

  /**
   * The journal acknowledged every record up to `lastSeq` (JournalWriter's
   * onAcknowledged, before their callers hear of it): they join the next
   * engine step. A fenced node takes nothing more: what it wrote meanwhile
   * may be void (a successor may have sealed the journal before it).
   */
  private acknowledged(lastSeq: number): void {
    if (this.fence() !== null || this.broken !== null) return;
    let taken = 0;
    while (taken < this.pending.length && this.pending[taken]!.seq <= lastSeq) taken++;
    if (taken === 0) return;
    const ready = this.pending.splice(0, taken);
    for (const entry of ready) {
      entry.acknowledged = true;
      this.acked.push(entry);
      this.ackedBytes += entry.bytes ?? 0;
    }
    if (ready.some((entry) => entry.install !== undefined)) {
      // A restore replaces the state at once.
      this.applyAcknowledged();
    } else if (this.acked.length >= ApplyBatchRecords || this.ackedBytes >= ApplyBatchBytes) {
      // A full step goes in this turn of the event loop, so what waits stays bounded, but after the callers
      // acknowledged now hear of it: they do not wait for the step, and their next commits join the journal's
      // next write while it runs.
      this.applyImmediate ??= setImmediate(() => this.applyAcknowledged());
    } else if (this.applyTimer === null) {
      this.applyTimer = setTimeout(() => this.applyAcknowledged(), ApplyDelayMs);
      this.applyTimer.unref();
    }
  }

  private stopApplyTimers(): void {
    if (this.applyTimer !== null) clearTimeout(this.applyTimer);
    if (this.applyImmediate !== null) clearImmediate(this.applyImmediate);
    this.applyTimer = null;
    this.applyImmediate = null;
  }

  /** Apply the acknowledged operations the engine does not hold yet, in one step. */
  private applyAcknowledged(): void {
    this.stopApplyTimers();
    const ready = this.acked;
    if (ready.length === 0) return;
    this.acked = [];
    this.ackedBytes = 0;
    try {
      let from = 0;
      ready.forEach((entry, i) => {
        if (entry.install === undefined) return;
        this.engineValue.apply(ready.slice(from, i));
        entry.install(this.engineValue, entry.seq);
        from = i + 1;
      });
      this.engineValue.apply(ready.slice(from));
    } catch (err) {
      if (this.broken === null) {
        this.broken = err as Error;
        this.logger.error('the storage engine did not take acknowledged journal records; this node refuses commits until it restarts (the journal holds them)', {
          appliedSeq: this.engineValue.appliedSeq,
          lastSeq: ready.at(-1)!.seq,
          error: (err as Error).message,
        });
      }
    }
    for (const entry of ready) this.head.drop(entry.effects, entry.seq);
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
      const tail = this.tail;
      if (tail === null) return { applied: 0, gap: null, diverged: null };
      const replayer = new Replayer(() => this.engineValue, this.options);
      try {
        const { records, gap, diverged } = await tail.poll((record) => this.follow(record, replayer));
        replayer.flush();
        this.headSeq = this.engineValue.appliedSeq;
        return { applied: records, gap, diverged };
      } catch (err) {
        // Records the tail passed but the engine did not take are read again by the next call.
        if (tail.nextSeq > this.engineValue.appliedSeq + 1) tail.reset(this.engineValue.appliedSeq + 1, this.engineValue.appliedEpoch || this.epochValue);
        this.headSeq = this.engineValue.appliedSeq;
        throw err;
      }
    });
    this.following = run.catch(() => undefined);
    return run;
  }

  private follow(record: JournalRecord, replayer: Replayer): Promise<void> | undefined {
    this.epochValue = Math.max(this.epochValue, record.epoch);
    noteRestore(this.restoreRefs, record);
    return replayer.add(record);
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
      const fromSeq = this.engineValue.appliedSeq;
      const replayer = new Replayer(() => this.engineValue, options);
      // Only the files from the one this node is reading on: it read and checked the ones before.
      const scan = await scanJournal(options.journalDir, {
        repair: false,
        logger,
        fromSeq,
        skipReadFiles: true,
        onRecord: (record: JournalRecord) => this.follow(record, replayer),
      });
      replayer.flush();
      const end = journalEnd(scan, await listCountedJournalFiles(options.journalDir));
      this.writer = await openWriter(options, end + 1, epoch, {
        onFailure: (lastDurableSeq) => this.rollBack(lastDurableSeq),
        onAcknowledged: (lastSeq) => this.acknowledged(lastSeq),
      });
      if (scan.cut !== null) logger.warn('journal torn tail sealed off at the last good record', { ...scan.cut, sealedSeq: end, nextFile: this.writer.stats.file });
      this.tail = null;
      this.epochValue = epoch;
      this.headSeq = end;
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
    // The engine of this node must never need what is pruned: it holds everything acknowledged.
    const removed = await pruneJournalFiles(this.options.journalDir, Math.min(uptoSeq, this.engine.appliedSeq));
    for (const [id, seq] of this.restoreRefs) if (seq <= uptoSeq) this.restoreRefs.delete(id);
    this.older.forget(uptoSeq);
    if (removed.length > 0) this.logger.info('journal pruned', { uptoSeq, files: removed.map((f) => f.path) });
    return removed;
  }

  // Called synchronously by the journal before it refuses the unacknowledged records.
  private rollBack(lastDurableSeq: number): void {
    this.acknowledged(lastDurableSeq);
    this.applyAcknowledged();
    const refused = this.pending.filter((entry) => entry.seq > lastDurableSeq);
    this.pending = this.pending.filter((entry) => entry.seq <= lastDurableSeq);
    this.logger.error('journal write failed; commits after the last durable one were refused', { lastDurableSeq, refused: refused.length });
    this.headSeq = lastDurableSeq;
    this.head.reset(this.engineValue, this.pending);
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
      this.dropPending();
      this.logger.info('journal handed over; following it', { seq: this.engineValue.appliedSeq });
    });
    this.following = run.catch(() => undefined);
    return run;
  }

  /**
   * Take over `fresh`'s engine and journal position (a store just opened
   * read-only on an engine rebuilt from the newest checkpoint and the
   * journal): a fenced primary rejoining as a follower trusts nothing it
   * applied, since the new primary's history is the journal as it sealed it.
   * `fresh`'s engine replaces this store's (Engine.replaceWith).
   */
  adopt(fresh: Store): Promise<void> {
    const run = this.following.then(async () => {
      if (this.writer !== null) {
        await this.writer.close().catch((err: unknown) => this.logger.warn('closing the old journal writer failed', { error: (err as Error).message }));
        this.writer = null;
      }
      // The rebuilt engine holds what the journal holds: what waited for this one's step is in it, or void.
      this.discardAcknowledged();
      this.engineValue = this.engineValue.replaceWith(fresh.engineValue);
      this.epochValue = fresh.epochValue;
      this.broken = null;
      this.restoreRefs.clear();
      for (const [id, seq] of fresh.restoreRefs) this.restoreRefs.set(id, seq);
      await this.older.stop();
      this.older = fresh.older;
      this.dropPending();
      this.logger.info('state rebuilt from the checkpoint and the journal; following it', { seq: this.engineValue.appliedSeq });
    });
    this.following = run.catch(() => undefined);
    return run;
  }

  /** Forget what was handed to the journal and not applied, and follow the journal from the engine's applied seq. */
  private dropPending(): void {
    this.applyAcknowledged();
    this.pending = [];
    this.headSeq = this.engineValue.appliedSeq;
    this.head.reset(this.engineValue);
    this.tail = new JournalTail(this.options.journalDir, this.headSeq + 1, this.engineValue.appliedEpoch || this.epochValue);
  }

  /** Roll the journal to a new file (a checkpoint's boundary). */
  async rollJournal(): Promise<string> {
    if (this.writer === null) throw new UnavailableError('this node does not write the journal');
    return this.writer.roll();
  }

  /** Flush and close the journal. The engine stays open: its owner closes it. */
  async close(): Promise<void> {
    await this.older.stop();
    await this.writer?.close();
    this.applyAcknowledged();
  }

  /** Forget the acknowledged operations not applied yet (the engine is replaced by one rebuilt from the journal). */
  private discardAcknowledged(): void {
    this.stopApplyTimers();
    this.acked = [];
    this.ackedBytes = 0;
  }

  /** Whether `key` is in space `space` as the commits handed to the journal leave it (false for an unknown space), without waiting for an engine step. */
  holds(space: string, key: string): boolean {
    return this.head.space(space) !== undefined && this.head.holds(space, key);
  }
}

/** The journal writer for `options`, appending from `nextSeq` at `epoch`, telling the store of failures and acknowledgements. */
function openWriter(
  options: StoreOptions,
  nextSeq: number,
  epoch: number,
  hooks: { onFailure: (lastDurableSeq: number) => void; onAcknowledged: (lastSeq: number) => void },
): Promise<JournalWriter> {
  return JournalWriter.open({
    dir: options.journalDir,
    nextSeq,
    epoch,
    sync: options.sync,
    groupCommitMs: options.groupCommitMs,
    syncIntervalMs: options.syncIntervalMs,
    logger: options.logger,
    ...hooks,
  });
}

/**
 * Refuse an engine that applied records a promotion voided: a journal file of
 * a newer epoch than the engine's last record starts at or before that
 * record (it sealed the journal below it). The node must rebuild its engine
 * from a checkpoint.
 */
function checkNotDiverged(files: JournalFile[], engine: Engine): void {
  const diverged = divergence(files, engine);
  if (diverged !== null) throw new EngineDivergedError(`${diverged}; it is rebuilt from the newest checkpoint`);
}

function divergence(files: JournalFile[], engine: Engine): string | null {
  const sealed = files.find((f) => f.epoch !== null && f.epoch > engine.appliedEpoch && f.firstSeq <= engine.appliedSeq);
  if (sealed === undefined || engine.appliedSeq === 0) return null;
  return (
    `the node's data folder holds the collection at seq ${engine.appliedSeq} (epoch ${engine.appliedEpoch}), but ${path.basename(sealed.path)} sealed the journal at seq ${sealed.firstSeq - 1}: ` +
    'what it applied after that was void'
  );
}

/**
 * Why `engine` cannot go on from its applied seq with the journal `files` of
 * FileVault installation `installation` (it must be rebuilt from a
 * checkpoint), or null when it can: a space file lost writes the collection
 * counts applied (Engine.lostWrites), it follows another installation, the
 * journal was pruned past it, or it applied records a promotion voided.
 */
export function engineUnusable(engine: Engine, installation: string, files: JournalFile[]): string | null {
  if (engine.lostWrites !== null) return engine.lostWrites;
  if (engine.installation !== null && engine.installation !== installation) {
    return `it follows the journal of installation ${engine.installation}, not this FileVault's (${installation})`;
  }
  const first = files[0]?.firstSeq;
  if (engine.appliedSeq > 0 && first !== undefined && first > engine.appliedSeq + 1) {
    return `the journal starts at seq ${first}, after its seq ${engine.appliedSeq} (the records between were pruned behind a checkpoint)`;
  }
  return divergence(files, engine);
}

/** The engine applied records a promotion voided (checkNotDiverged): rebuild it from a checkpoint. */
export class EngineDivergedError extends Error {}

/**
 * The seq of the journal's last record. Pruning can leave only files that hold
 * no record yet (a new file after a checkpoint's roll): then the journal ends
 * just before the newest file's first seq.
 */
function journalEnd(scan: ScanResult, files: JournalFile[]): number {
  return Math.max(scan.lastSeq, (files.at(-1)?.firstSeq ?? 1) - 1);
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

async function replayRestore(options: StoreOptions, op: RestoreOp, engine: Engine, seq: number, epoch: number): Promise<void> {
  if (options.replayRestore === undefined) {
    throw new Error(`journal record seq ${seq} restores checkpoint ${op.checkpoint}, and this store cannot load checkpoints; refusing to start rather than skip it`);
  }
  try {
    await options.replayRestore(op, engine, seq, epoch);
  } catch (err) {
    throw new Error(
      `journal record seq ${seq} restores checkpoint ${op.checkpoint}, which cannot be loaded (${(err as Error).message}); ` +
        'put that checkpoint file back into FileVault/checkpoint and start again',
      { cause: err },
    );
  }
}
